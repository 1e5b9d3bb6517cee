"""How much one seed says: benchmarks/distill.py's students trained from several seeds, judged through the
runtime, as mean ± sd of the share of the teacher's accuracy that each budget keeps.

distill.py trains one student per cell from seed 0; its 1 MiB and 256 KiB cells sit a few test rows from the
#15 goals, and a seed moves them by more than that. This script runs distill.py once per ``--seeds`` value
(``--seed``; other options passed through after ``--``), keeps each run's results beside the cached students
(``<cache>/seeds/``), and writes one table (results/distill_seeds.md/.json). Students already trained for a
seed are resumed from their checkpoints, so a second run costs the exports and the runtime evaluation only.

    python benchmarks/distill_seeds.py --seeds 0,1,2,3,4 -- --targets ort-mobile --budgets 1MiB,256KiB \\
        --families text_hashed --ablations ""
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
#: the #15 goals: budget -> the share of the teacher's accuracy it must keep (through the runtime)
GOALS = {"1MiB": 100.0, "256KiB": 99.5, "64KiB": 97.0}


def run_seed(seed: int, cache: Path, passthrough: list[str], stem: str = "distill_seeds") -> dict:
    """distill.py with ``--seed``; its results file moved to ``<cache>/seeds/`` and returned."""
    stem = f"{stem}_seed{seed}"
    cmd = [sys.executable, str(REPO / "benchmarks" / "distill.py"), "--cache", str(cache), "--seed", str(seed),
           "--results-stem", stem, *passthrough]
    print(f"[{time.strftime('%H:%M:%S')}] seed {seed}: {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    keep = cache / "seeds"
    keep.mkdir(parents=True, exist_ok=True)
    for ext in ("json", "md"):
        shutil.move(str(RESULTS / f"{stem}.{ext}"), str(keep / f"{stem}.{ext}"))
    return json.loads((keep / f"{stem}.json").read_text())


def summarize(reports: dict[int, dict]) -> list[dict]:
    """One row per (target, family, budget, model): runtime accuracy and % of teacher per seed, mean, sd."""
    cells: dict[tuple, dict] = {}
    for seed, report in sorted(reports.items()):
        for row in report["rows"]:
            if row.get("runtime_accuracy") is None or row.get("mode") not in ("distilled", "hard-label"):
                continue
            key = (row["target"], row["family"], row["budget"], row["model"])
            cell = cells.setdefault(key, {"target": key[0], "family": key[1], "budget": key[2], "model": key[3],
                                          "seeds": [], "runtime_accuracy": [], "pct_of_teacher": [],
                                          "bundle_bytes": [], "init": [], "best_val": [],
                                          "hashes_per_feature": row.get("hashes_per_feature")})
            cell["seeds"].append(seed)
            cell["runtime_accuracy"].append(row["runtime_accuracy"])
            cell["pct_of_teacher"].append(row["pct_of_teacher"])
            cell["bundle_bytes"].append(row["bundle_bytes"])
            cell["init"].append(row.get("init", "teacher"))
            cell["best_val"].append(row.get("best_val"))  # distill.py --init: where the first rows came from
    for cell in cells.values():
        pct = cell["pct_of_teacher"]
        cell["pct_mean"] = statistics.fmean(pct)
        cell["pct_sd"] = statistics.stdev(pct) if len(pct) > 1 else 0.0
        vals = [v for v in cell["best_val"] if v is not None]
        cell["val_mean"] = statistics.fmean(vals) if vals else None
        goal = GOALS.get(cell["budget"])
        cell["goal_pct"] = goal
        cell["seeds_meeting_goal"] = sum(p >= goal for p in pct) if goal is not None else None
    return list(cells.values())


def markdown(rows: list[dict], meta: dict) -> str:
    lines = ["# Distillation across seeds: banking77, through the runtime", "",
             f"Measured {meta['finished']} by `{meta['command']}`; each seed is one run of `benchmarks/distill.py "
             f"--seed N {shlex.join(meta['passthrough'])}` (its own results: `<cache>/seeds/`). The seed draws the "
             "students' initial rows (where teacher init leaves them) and the data order; the teacher, transfer "
             "set and sizing are the same in every run. % of teacher = runtime accuracy / the fp32 teacher's "
             "runtime accuracy on the 3,080 test rows (one row = 0.03 pt); \"r\" marks a student trained from "
             "random rows (distill.py --init random, or auto where validation chose them).", "",
             "| target | family | budget | student | seeds | % of teacher per seed | mean ± sd | goal | seeds at goal "
             "| validation accuracy (PyTorch), mean |",
             "|---|---|---|---|---:|---|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["target"], r["family"], -_bytes(r["budget"]), r["model"])):
        per_seed = ", ".join(f"{p:.2f}" + (" r" if i == "random" else "")
                             for p, i in zip(r["pct_of_teacher"], r.get("init") or ["teacher"] * len(r["seeds"])))
        goal = f">= {r['goal_pct']}%" if r["goal_pct"] is not None else "-"
        at_goal = f"{r['seeds_meeting_goal']}/{len(r['seeds'])}" if r["goal_pct"] is not None else "-"
        ids = f" ({r['hashes_per_feature']} ids/n-gram)" if (r.get("hashes_per_feature") or 1) > 1 else ""
        lines.append(f"| {r['target']} | {r['family']} | {r['budget']}{ids} | {r['model']} | {len(r['seeds'])} | "
                     f"{per_seed} | {r['pct_mean']:.2f}% ± {r['pct_sd']:.2f} | {goal} | {at_goal} | "
                     + (f"{r['val_mean']:.4f} |" if r.get("val_mean") is not None else "- |"))
    return "\n".join(lines) + "\n"


def _bytes(budget: str) -> int:
    from edge_kd.units import parse_bytes

    return parse_bytes(budget)


def main() -> int:
    argv = sys.argv[1:]
    passthrough = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--cache", type=Path, default=REPO / ".cache" / "distill-bench")
    p.add_argument("--stem", default="distill_seeds",
                   help="results name: results/STEM.md/.json, per seed <cache>/seeds/STEM_seedN.*")
    args = p.parse_args(own)
    if any(a in ("--seed", "--results-stem", "--cache") for a in passthrough):
        print("error: --seed, --results-stem and --cache are set by distill_seeds.py; give --seeds/--cache before --",
              file=sys.stderr)
        return 2
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        print(f"error: --seeds {args.seeds!r}: comma-separated integers", file=sys.stderr)
        return 2
    if not seeds:
        print("error: --seeds names no seed", file=sys.stderr)
        return 2
    started = time.time()
    try:
        reports = {seed: run_seed(seed, args.cache, passthrough, args.stem) for seed in seeds}
    except subprocess.CalledProcessError as exc:
        print(f"error: benchmarks/distill.py failed (exit {exc.returncode}); run it alone to see why", file=sys.stderr)
        return exc.returncode if exc.returncode in (1, 2) else 1
    rows = summarize(reports)
    meta = {"command": "python " + shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "seeds": seeds,
            "passthrough": passthrough, "seconds": round(time.time() - started, 1),
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "teacher_runtime_accuracy": {r["target"]: r["runtime_accuracy"] for rep in reports.values()
                                         for r in rep["rows"] if r.get("model") == "teacher fp32"}}
    from edge_kd.pipeline import atomic_write_json, atomic_write_text

    atomic_write_json(RESULTS / f"{args.stem}.json", {**meta, "rows": rows})
    atomic_write_text(RESULTS / f"{args.stem}.md", markdown(rows, meta))
    print(f"wrote {RESULTS / (args.stem + '.md')} ({meta['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
