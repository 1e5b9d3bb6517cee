"""Structured pruning and low-rank factorization that make models faster in the target runtime.

- ``pruner``: dependency-aware channel / neuron / embedding-dim pruning (torch-pruning DepGraph) to a
  params or MACs goal, channels rounded to the profile's ``pruning.round_to``.
- ``criteria``: importance criteria by name (l1, l2, bn, taylor).
- ``macs``: MACs counted on the ``torch.export`` graph (sees functional convolutions and matmuls).
- ``schedule``: iterative steps with a KD recovery fine-tune; params/MACs/latency goals, per-step report.
- ``lowrank``: SVD factorization kept only where measured latency improves and accuracy holds.
- ``serialize``: pruned model as ModelSpec JSON + safetensors (reloads without unpickling code).

Importing this package is light (no torch): import the submodules where they are used.

    from edge_kd.prune.pruner import PruneConfig, prune_to_goal
    pruned, info = prune_to_goal(model, example_inputs, PruneConfig(goal="macs", amount=0.5))
"""
