"""``edge-kd prune``: structured pruning to a params / MACs / latency goal, measured in the target runtime."""
from __future__ import annotations

import argparse
import sys

from edge_kd.cli.common import add_model_arguments, add_target_argument, model_spec, print_table
from edge_kd.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prune", help="structured pruning (channels, neurons, heads) to a params/MACs/latency goal",
        description="Remove whole channels, neurons and embedding dimensions from MODEL (a module:factory "
                    "reference or a ModelSpec .json) with torch-pruning's dependency graph, in --steps steps "
                    "with a short distillation fine-tune after each when --data is given. After every step "
                    "the params, MACs, p50 latency in the target runtime and accuracy are recorded in "
                    "DIR/build.json (stage 'prune'); the pruned model is written as DIR/model.json + "
                    "DIR/model.safetensors (reload: ModelSpec.load('DIR/model.json').build()). "
                    "A latency budget that cannot be met writes the best candidate and exits 1.")
    add_model_arguments(parser)
    add_target_argument(parser)
    goal = parser.add_mutually_exclusive_group(required=True)
    goal.add_argument("--ratio", type=float, metavar="R", help="remove this fraction of the parameters, in (0, 1)")
    goal.add_argument("--macs", type=float, metavar="R", help="remove this fraction of the MACs, in (0, 1) (0.5 = 2x fewer)")
    goal.add_argument("--latency-budget", metavar="BUDGET",
                      help="latency goal in the target runtime: a fraction of the unpruned model's p50 in (0, 1) "
                           "(0.5 = twice as fast) or a p50 budget such as 12ms; channels are chosen per group by "
                           "a latency table measured in the runtime (cached), not by a uniform ratio")
    parser.add_argument("--criterion", default="l2", help="l1 | l2 | bn | taylor (taylor needs --data)")
    parser.add_argument("--protect", nargs="+", default=[], metavar="NAME",
                        help="module names kept whole (the classifier and embeddings are kept by default)")
    parser.add_argument("--protect-residual", action="store_true",
                        help="keep the width of residual streams (channels joined by an add); prune only inside "
                             "blocks (much less damage per step on MobileNet/EfficientNet-style networks)")
    parser.add_argument("--prune-embeddings", action="store_true", help="also shrink embedding dimensions")
    parser.add_argument("--steps", type=int, default=1, help="pruning steps (recovery fine-tune after each)")
    parser.add_argument("--step-sizes", choices=("even", "geometric"), default="even",
                        help="split a --macs/--ratio goal over the steps evenly (the same share of the original "
                             "each step) or geometrically (the same share of what is left: gentler late steps)")
    parser.add_argument("--round-to", type=int, default=None,
                        help="channel multiple (default: the target profile's pruning.round_to)")
    parser.add_argument("--data", metavar="SPEC", help="labelled data for recovery and accuracy, e.g. "
                        "images:DIR?split=train&size=224 (20%% is held out for accuracy, at most --eval-rows)")
    parser.add_argument("--eval-rows", type=int, default=300, help="held-out rows for accuracy (default 300)")
    parser.add_argument("--recovery-batches", type=int, default=50,
                        help="at most this many batches per recovery epoch (0: no recovery)")
    parser.add_argument("--recovery-epochs", type=int, default=1, help="KD epochs after each step (default 1)")
    parser.add_argument("--final-epochs", type=int, default=None,
                        help="KD epochs after the last step (default: --recovery-epochs)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--augment", action="store_true",
                        help="recover on random views of the photos (crops, flips, jitter), each scored by the "
                             "unpruned model, instead of its outputs on the unaugmented rows (image --data only)")
    parser.add_argument("--no-latency", action="store_true",
                        help="skip the per-step export + benchmark (not allowed with --latency-budget)")
    parser.add_argument("--lowrank", type=float, default=None, metavar="ENERGY",
                        help="after pruning, try SVD factorization of Linear / 1x1 conv layers at this retained "
                             "energy (e.g. 0.9); each is kept only if the measured p50 improves and accuracy holds")
    parser.add_argument("--lowrank-max", type=int, default=8, metavar="N",
                        help="at most N measured low-rank decisions (each one exports and benchmarks)")
    parser.add_argument("--lowrank-group", choices=["layer", "shape"], default="shape",
                        help="decide per layer, or once per group of same-shape layers (default)")
    parser.add_argument("--max-accuracy-drop", type=float, default=0.01,
                        help="low-rank: largest accuracy drop (fraction) a factorization may cost (default 0.01)")
    parser.add_argument("--latency-table", metavar="FILE",
                        help="with --latency-budget: use this latency table (JSON written by an earlier run, "
                             "recorded in its build.json) instead of the cached or a newly measured one; a table "
                             "of another target or model structure is refused")
    parser.add_argument("--out", required=True, metavar="DIR", help="build directory (new, empty or an edge_kd build)")
    parser.set_defaults(func=cmd_prune)


def parse_latency_budget(text: str, option: str) -> tuple[float, str]:
    """(value, unit) of a latency budget: a bare number is a fraction of the unpruned latency in (0, 1),
    a duration ("12ms", "0.5s") a p50 budget in ms. Anything else is an InputError (exit 2)."""
    from edge_kd.cli._checks import check_ms

    try:
        value = float(text)
    except ValueError:
        return check_ms(text, option), "ms"
    if not 0.0 < value < 1.0:
        raise InputError(f"{option} {text!r}: a bare number is the fraction of the unpruned model's latency to "
                         "keep and must be in (0, 1), e.g. 0.5; a budget in time needs a unit, e.g. 12ms")
    return value, "fraction"


def cmd_prune(args: argparse.Namespace) -> int:
    from edge_kd.targets import load_target

    from edge_kd.cli._checks import existing_inputs
    from edge_kd.pipeline.paths import check_output_dir, check_owned

    target = load_target(args.target)
    out = check_output_dir(args.out)
    check_owned(out, ("model.json", "model.safetensors"),
                inputs=existing_inputs([args.weights, target.source, args.data,
                                        args.latency_table, args.model if args.model.endswith(".json") else None]))
    unit = "ms"
    if args.latency_budget is not None:
        goal, amount, unit = "latency", *parse_latency_budget(args.latency_budget, "--latency-budget")
        if args.no_latency:
            raise InputError("--no-latency cannot be combined with --latency-budget")
    elif args.macs is not None:
        goal, amount = "macs", args.macs
    else:
        goal, amount = "params", args.ratio
    if args.latency_table is not None and args.latency_budget is None:
        raise InputError("--latency-table is used by a latency goal: give --latency-budget too")
    if args.lowrank is not None and args.no_latency:
        raise InputError("--lowrank keeps a factorization only when the measured latency improves: "
                         "it cannot be combined with --no-latency")
    if args.lowrank is not None and not 0 < args.lowrank <= 1:
        raise InputError(f"--lowrank energy must be in (0, 1], got {args.lowrank:g}")
    if args.eval_rows < 1 or args.batch_size < 1 or args.recovery_batches < 0:
        raise InputError("--eval-rows and --batch-size must be >= 1, --recovery-batches >= 0")
    if args.recovery_epochs < 1 or (args.final_epochs is not None and args.final_epochs < 1):
        raise InputError("--recovery-epochs and --final-epochs must be >= 1")

    import torch

    from edge_kd.prune.pruner import PruneConfig

    config = PruneConfig(goal=goal, amount=amount, latency_unit=unit, criterion=args.criterion,
                         protect=tuple(args.protect), protect_residual=args.protect_residual,
                         protect_embeddings=not args.prune_embeddings, steps=args.steps,
                         step_sizes=args.step_sizes,
                         round_to=args.round_to if args.round_to is not None else target.pruning.round_to)
    spec = model_spec(args)
    model = spec.build()
    example = spec.example_inputs()

    from edge_kd.prune.schedule import RecoveryConfig, RecoveryData

    recovery_data = data_info = None
    if args.data:
        import numpy as np

        from edge_kd.data.spec import parse_data_spec
        from edge_kd.data.splits import stratified_split_indices

        ds = parse_data_spec(args.data)
        train_idx, eval_idx = stratified_split_indices(ds.labels, [0.8, 0.2], seed=0)
        eval_idx = np.sort(eval_idx[: args.eval_rows])
        recovery_data = RecoveryData.from_dataset(ds, train_idx, eval_idx)
        data_info = {"spec": args.data, "train_rows": int(len(train_idx)), "eval_rows": int(len(eval_idx))}
    # The recovery after each step is the distillation trainer's, as in `edge-kd build`: --recovery-epochs
    # epochs (--final-epochs after the last step) of at most --recovery-batches batches.
    recovery = RecoveryConfig(epochs=args.recovery_epochs, final_epochs=args.final_epochs,
                              max_batches=args.recovery_batches, batch_size=args.batch_size,
                              augment=args.augment) \
        if args.recovery_batches else RecoveryConfig(epochs=0, final_epochs=0, batch_size=args.batch_size)

    # Fail on an untraceable model, a bad --protect or nothing-to-prune BEFORE the build folder exists.
    import copy

    from edge_kd.prune.pruner import build_pruner, resolve_protected
    from edge_kd.prune.macs import count_macs

    torch.set_num_threads(target.runtime.threads)
    count_macs(model, example)
    protected = resolve_protected(model, example, config)
    build_pruner(copy.deepcopy(model), example, config, 0.0, protected)
    if goal == "latency":
        from edge_kd.prune.latency import LatencyTable, measuring_function, structure

        measuring_function(target)  # a runtime with no way to measure per-layer latency: exit 2 now
        if args.latency_table is not None:
            LatencyTable.load(args.latency_table).check_matches(
                target, structure(model, example, config, protected)[3], config.round_to)

    from edge_kd.pipeline.lock import BuildLock

    with BuildLock(out):
        return _prune(args, target, out, spec, model, example, config, goal, recovery, recovery_data, data_info)


def _prune(args, target, out, spec, model, example, config, goal, recovery, recovery_data,
           data_info) -> int:
    from edge_kd.pipeline import Build
    from edge_kd.pipeline.stage import content_hash
    from edge_kd.prune.serialize import save_pruned
    from edge_kd.stages.stages import latency_probe, prune_entry

    build = Build.create(out, target=target.to_dict())
    latency = None if args.no_latency else latency_probe(example, target)

    with build.stage("prune", cache_key=content_hash({"spec": spec.to_dict(), "config": config.to_dict()})) as record:
        record["details"].update({"config": config.to_dict(), "model": spec.to_dict(), "data": data_info,
                                  "steps": []})

        def on_step(report, _model) -> None:
            record["details"]["steps"].append(report.to_dict())
            build.save()
            p50 = f"{report.p50_ms:.3f} ms" if report.p50_ms is not None else "-"
            acc = f"{report.accuracy:.4f}" if report.accuracy is not None else "-"
            print(f"step {report.step}: params {report.params}  MACs {report.macs} ({report.macs_ratio:.3f})  "
                  f"p50 {p50}  accuracy {acc}", file=sys.stderr, flush=True)

        result = prune_entry(model, example, config, target, recovery=recovery, recovery_data=recovery_data,
                             measure_latency=not args.no_latency, on_step=on_step,
                             latency_table_path=args.latency_table,
                             log=lambda line: print(line, file=sys.stderr, flush=True))
        final, rewrites = result.model, []
        if args.lowrank is not None:
            from edge_kd.prune.lowrank import lowrank_search

            final, rewrites, decisions = lowrank_search(
                result.model, example, latency_fn=latency,
                metric_fn=recovery_data.evaluate if recovery_data is not None else None, energy=args.lowrank,
                max_metric_drop=args.max_accuracy_drop, round_to=config.round_to, protect=result.protected,
                max_layers=args.lowrank_max, group_by=args.lowrank_group)
            record["details"]["lowrank"] = [d.to_dict() for d in decisions]
            for d in decisions:
                print(f"low-rank {d.module} rank {d.rank}/{d.full_rank}: {d.reason}", file=sys.stderr)
        spec_path = save_pruned(final, spec, out, rewrites=rewrites)
        build.add_artifact(spec_path, role="pruned_model_spec", format="json")
        build.add_artifact(out / "model.safetensors", role="pruned_model_weights", format="safetensors")
        # The final reports (a latency goal's last step gets its long recovery after the loop).
        record["details"].update({"goal_met": result.goal_met, "missed_by": result.missed_by,
                                  "protected": result.protected, "latency_table": result.latency_table,
                                  "steps": [s.to_dict() for s in result.steps],
                                  "recovery": result.recovery, "cpu_seconds": result.cpu_seconds})
        record["outputs"] = {"spec": spec_path.name, "weights": "model.safetensors"}
    first, last = result.steps[0], result.steps[-1]
    build.update_metrics(section="prune", params=last.params, macs=last.macs, macs_ratio=last.macs_ratio,
                         params_before=first.params, macs_before=first.macs, p50_ms=last.p50_ms,
                         p50_ms_before=first.p50_ms, accuracy=last.accuracy, accuracy_before=first.accuracy,
                         goal_met=result.goal_met, missed_by=result.missed_by)
    rows = [(s.step, s.params, s.macs, f"{s.macs_ratio:.3f}", f"{s.p50_ms:.3f}" if s.p50_ms is not None else "-",
             f"{s.accuracy:.4f}" if s.accuracy is not None else "-") for s in result.steps]
    print_table(rows, ["step", "params", "MACs", "MACs ratio", "p50 ms", "accuracy"])
    print(f"wrote {spec_path} and {out / 'model.safetensors'}")
    if not result.goal_met:
        unit = "ms" if goal == "latency" else f"of the original {goal}"  # a fraction budget misses in ms too
        print(f"edge-kd: goal missed by {result.missed_by:g} {unit} (best effort written)", file=sys.stderr)
        return 1
    return 0
