"""The examples' fp32 teacher and int8 student on an emulated ARM64 phone core, beside the x86 host.

For each example and target (ExecuTorch, ONNX Runtime, LiteRT), `edge-kd build` makes the artifacts (resuming from
--work), then each artifact runs in the aarch64 build of the same runtime version under qemu-user
(`edge_kd.emulate`): instructions per inference by class and the cortex-a76 cost-model estimate. The
host p50 comes from the same build's manifest. The point is the int8-vs-fp32 (student-vs-teacher) ratio
on the ARM kernels next to the x86 one. Writes benchmarks/results/emulate.{json,md}.

    python benchmarks/emulate.py [--examples purchase_online_shoppers,product_image_grocery]
                                 [--targets android-arm64-xnnpack,ort-mobile,tflite-int8] [--core cortex-a76] [--work builds/bench]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _row(example: str, build_dir: Path, core: str) -> dict:
    from edge_kd.emulate import emulate_artifact
    from edge_kd.pipeline.manifest import read_manifest

    m = read_manifest(build_dir)
    student = next(a for a in m["artifacts"] if a["role"] == "model")
    teacher = m["teacher"].get("artifact")
    # A teacher with no runtime artifact (gradient-boosted trees) has nothing to emulate: student only.
    paths = {"student": Path(student["path"])}
    if teacher:
        paths["teacher"] = Path(teacher["path"])
    row = {"example": example, "target": m["target"]["name"], "core": core,
           "teacher_artifact": paths["teacher"].name if teacher else None, "student_artifact": paths["student"].name,
           "teacher_host_p50_ms": (m["teacher"].get("latency_ms") or {}).get("p50"),
           "student_host_p50_ms": m["metrics"]["latency_ms"]["p50"], "teacher_arm": None}
    for role, path in paths.items():
        if not path.is_absolute():
            path = build_dir / path
        emu = emulate_artifact(path, core)
        row[f"{role}_arm"] = {k: emu[k] for k in ("instructions", "classes", "kinds", "estimate_ms", "run_instructions",
                                                  "compute_deterministic", "spread", "emulation_seconds")}
    if teacher:
        row["host_speedup"] = row["teacher_host_p50_ms"] / row["student_host_p50_ms"]
        row["arm_speedup"] = row["teacher_arm"]["estimate_ms"] / row["student_arm"]["estimate_ms"]
        row["arm_insn_ratio"] = row["teacher_arm"]["instructions"] / row["student_arm"]["instructions"]
    else:
        row["host_speedup"] = row["arm_speedup"] = row["arm_insn_ratio"] = None
    return row


def _share(arm: dict, cls: str) -> str:
    return f"{arm['classes'][cls] / arm['instructions']:.0%}"


def _markdown(rows: list[dict], notes: list[str], env: dict) -> str:
    lines = ["# fp32 teacher vs int8 student on an emulated ARM64 core, beside the x86 host", "",
             "Produced by `benchmarks/emulate.py`. ARM figures: instructions per inference executed by the aarch64 "
             "build of the same runtime version under qemu-user on the named core (`edge_kd.emulate`), and the "
             "cost-model estimate (docs/arm-emulation.md: issue throughput and clock, no cache misses). Host p50: "
             "the same build's measured x86 latency (one pinned core). Speed-ups are teacher / student.",
             f"Environment: {env.get('qemu')}; runtimes {env.get('pins')}.", "",
             "| example | target | artifacts | teacher Minsn (fma / dot) | student Minsn (fma / dot / int mac) | "
             "teacher est ms | student est ms | ARM speed-up (est) | ARM insn ratio | x86 p50 ms teacher / student | "
             "x86 speed-up |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        t, s = r["teacher_arm"], r["student_arm"]
        student = (f"{s['instructions'] / 1e6:.3f} ({_share(s, 'fp_fma')} / {_share(s, 'int8_dot')} / "
                   f"{_share(s, 'int_mac')})")
        if t is None:  # no runtime artifact for the teacher (trees): the student alone
            lines.append(
                f"| {r['example']} | {r['target']} | (no teacher artifact) / {r['student_artifact']} | n/a | {student} | "
                f"n/a | {s['estimate_ms']:.4f} | n/a | n/a | n/a / {r['student_host_p50_ms']:.4f} | n/a |")
            continue
        lines.append(
            f"| {r['example']} | {r['target']} | {r['teacher_artifact']} / {r['student_artifact']} | "
            f"{t['instructions'] / 1e6:.3f} ({_share(t, 'fp_fma')} / {_share(t, 'int8_dot')}) | {student} | "
            f"{t['estimate_ms']:.3f} | {s['estimate_ms']:.3f} | {r['arm_speedup']:.2f}x | {r['arm_insn_ratio']:.2f}x | "
            f"{r['teacher_host_p50_ms']:.3f} / {r['student_host_p50_ms']:.3f} | {r['host_speedup']:.2f}x |")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def _reestimate(out_dir: Path) -> int:
    from edge_kd.emulate.cost import CORES, estimate
    from edge_kd.pipeline import atomic_write_json, atomic_write_text

    data = json.loads((out_dir / "emulate.json").read_text())
    for row in data["rows"]:
        for role in ("teacher", "student"):
            if row.get(f"{role}_arm"):
                row[f"{role}_arm"]["estimate_ms"] = estimate(row[f"{role}_arm"]["kinds"], CORES[row["core"]])["ms"]
        if row.get("teacher_arm"):
            row["arm_speedup"] = row["teacher_arm"]["estimate_ms"] / row["student_arm"]["estimate_ms"]
    atomic_write_json(out_dir / "emulate.json", data)
    atomic_write_text(out_dir / "emulate.md", _markdown(data["rows"], data["notes"], data["environment"]))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", default="purchase_online_shoppers,product_image_grocery")
    parser.add_argument("--targets", default="android-arm64-xnnpack,ort-mobile,tflite-int8")
    parser.add_argument("--core", default="cortex-a76")
    parser.add_argument("--data", help="shared data root (default: ../shared/data beside the repository)")
    parser.add_argument("--work", default=str(REPO / "builds" / "bench"), help="build output root")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--keep-others", action="store_true",
                        help="keep the rows of examples this run does not emulate from the existing emulate.json")
    parser.add_argument("--reestimate", action="store_true",
                        help="recompute the estimates of the committed emulate.json from its per-kind counts with the "
                             "current cost model (after a constant changed); no build, no emulation")
    args = parser.parse_args()
    if args.reestimate:
        return _reestimate(Path(args.out))

    from edge_kd.stages import build
    from edge_kd.emulate import ensure_environment
    from edge_kd.errors import EdgeKDError
    from edge_kd.pipeline import atomic_write_json, atomic_write_text
    from edge_kd.recipe import default_shared_data

    env = ensure_environment()
    data_root = Path(args.data) if args.data else default_shared_data()
    rows, notes = [], []
    examples = args.examples.split(",")
    kept_rows, kept_notes = [], []
    previous = Path(args.out) / "emulate.json"
    if args.keep_others and previous.is_file():
        old = json.loads(previous.read_text(encoding="utf-8"))
        kept_rows = [r for r in old.get("rows", []) if r["example"] not in examples]
        kept = {r["example"] for r in kept_rows}
        kept_notes = [n if "earlier run" in n else f"{n} (earlier run, not redone by this one)"
                      for n in old.get("notes", []) if n.split(":", 1)[0] in kept]
    for example in examples:
        start = time.perf_counter()
        try:
            summaries = build(REPO / "examples" / f"{example}.toml", args.targets.split(","), Path(args.work) / example,
                              resume=True, shared_data=str(data_root))
            for s in summaries:
                rows.append(_row(example, s.build_dir, args.core))
                r = rows[-1]
                print(f"{example} {r['target']}: student {r['student_arm']['instructions']:,} instructions, "
                      f"est {r['student_arm']['estimate_ms']:.4f} ms"
                      + (f"; ARM speed-up {r['arm_speedup']:.2f}x, x86 {r['host_speedup']:.2f}x" if r["teacher_arm"]
                         else " (no teacher artifact)"), flush=True)
        except EdgeKDError as exc:
            notes.append(f"{example}: failed: {exc}")
            print(f"{example}: {exc}", file=sys.stderr)
            continue
        notes.append(f"{example}: built and emulated in {time.perf_counter() - start:.0f} s")
        out_dir = Path(args.out)
        atomic_write_json(out_dir / "emulate.json", {"rows": rows + kept_rows, "notes": notes + kept_notes,
                                                     "environment": env.versions})
        atomic_write_text(out_dir / "emulate.md", _markdown(rows + kept_rows, notes + kept_notes, env.versions))
    if not rows:
        return 2
    print(_markdown(rows, notes, env.versions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
