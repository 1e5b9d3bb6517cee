"""``edge-kd build``: the whole pipeline per target, from a recipe.

    teacher (cached) -> distill to the budget -> prune (when the recipe asks) -> calibrate int8 + export
    -> bench through the runtime (student and fp32 teacher) -> gate

The recipe and every profile are validated, and the data is loaded, before any training starts, so a
bad recipe fails in seconds. One build directory per target holds the artifacts, ``build.json`` and
``report.md``; completed stages with the same inputs (content hashes) are reused on a re-run or with
``--resume``, so a second target or a crash does not redo the teacher or the distillation.

    from edge_kd.stages import build
    summaries = build("examples/intent_bitext.toml", ["android-arm64-xnnpack", "ort-mobile"], "builds/intent")
"""
from edge_kd.stages.runner import BuildSummary, build, plan_build, run_stage

__all__ = ["BuildSummary", "build", "plan_build", "run_stage"]
