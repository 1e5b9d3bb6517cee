"""``edge-kd distill RECIPE --target NAME --out DIR``: a student sized to the target's budget,
distilled from the recipe's teacher (heavy imports happen inside the command)."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "distill", help="distill a budget-sized student from the recipe's teacher",
        description="Choose the largest student of the recipe's family that fits the target's size budget "
                    "(int8 artifact + preprocessing assets), train it against the teacher's cached outputs, "
                    "and write it (safetensors + ModelSpec JSON + preprocessing spec) with its metrics into "
                    "the build manifest. Run under `torchrun --nproc_per_node N -m edge_kd distill ...` for DDP.",
        epilog="Example: edge-kd distill examples/intent_banking77.toml --target ort-mobile --out build/intent")
    parser.add_argument("recipe", metavar="RECIPE", help="recipe TOML (see examples/)")
    parser.add_argument("--target", metavar="NAME|PATH", default=None,
                        help="target profile (default: the recipe's `target`)")
    parser.add_argument("--out", required=True, metavar="DIR", help="build directory (created; build.json inside)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last epoch checkpoint (or reuse a finished stage)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="training device (auto: CUDA when present)")
    parser.add_argument("--data-root", metavar="PATH", default=None,
                        help="value of ${shared_data} in the recipe (default: $EDGE_KD_SHARED_DATA or ../shared/data)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from edge_kd.distill.run import distill
    from edge_kd.errors import InputError
    from edge_kd.recipe import load_recipe
    from edge_kd.targets import load_target

    recipe = load_recipe(args.recipe, shared_data=args.data_root)
    target_ref = args.target or recipe.target
    if not target_ref:
        raise InputError(f"{args.recipe}: no target: pass --target NAME or set `target` in the recipe")
    target = load_target(target_ref)
    from edge_kd.cli._checks import check_device
    from edge_kd.pipeline.lock import BuildLock
    from edge_kd.pipeline.paths import check_output_dir

    check_device(args.device)
    check_output_dir(args.out, inputs=[args.recipe])
    with BuildLock(args.out):
        details = distill(recipe, target, args.out, resume=args.resume, device=args.device,
                          log=lambda msg: print(msg, file=sys.stderr))
    from edge_kd.pipeline.records import distill_figures

    f = distill_figures(details)
    metric = f["metric"]
    s = details["sizing"]
    if details["student"]["family"] == "teacher":
        print(f"student = the teacher ({s['params']:,} params), test {metric} "
              f"{f['test_pytorch']:.4f}; prune it to fit (edge-kd prune, or [prune] in edge-kd build) "
              f"-> {args.out}")
        return 0
    print(f"student {details['student']['family']} {s['knob']}={s['value']} ({s['params']:,} params): bundle "
          f"{s['bundle_bytes']:,} bytes ({s['method']}); val {metric} {f['best_val']:.4f}, "
          f"test {metric} {f['test_pytorch']:.4f} (teacher {f['teacher_test']:.4f}) "
          f"-> {args.out}")
    return 0
