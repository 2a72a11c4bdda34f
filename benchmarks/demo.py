"""`lion demo` as a stored result, over several seeds: what it measures, not one run's luck.

    python benchmarks/demo.py --seeds 5           # lion demo --seed 0..4, seed 0 run twice, store
    python benchmarks/demo.py                     # seed 0 only (and its repeat)
    python benchmarks/demo.py --from lion_demo/   # store a finished `lion demo --out lion_demo/`

Each seed is a fresh ``lion demo --seed K`` in ``benchmarks/work/demo_seed<K>`` (a new cohort,
holdout, split and training). Seed 0, the default of ``lion demo``, is run a second time in
its own folder, and its printed table must equal the first one's (``repeat_identical``).
Stores in ``benchmarks/results/demo/``: ``summary.json`` (seed 0's summary as ``lion demo``
writes it, ``per_seed`` with each seed's minutes, load average and verdict, ``over_seeds`` with
how often organ context was ahead, plus command, date, commit and machine), ``results.csv``
(seed 0, one row per model), ``seeds.csv`` (one row per seed and model) and ``scores.csv`` (one
row per seed, model and holdout case). docs/reproducing.md, docs/benchmarks.md and the README
show them (``make_docs.py``). With ``--from`` the load average at the demo's start was not
recorded (stored as null).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from store import Run, code_version, load_average

WORK = Path(__file__).resolve().parent / "work"
MEASURES = ("median_dice", "lesion_f1", "fp_at_hot_organs_ml", "fp_elsewhere_ml")


def run_demo(seed: int, out: Path) -> dict:
    """A fresh ``lion demo --seed`` into ``out``: its summary, printed table, minutes, load."""
    shutil.rmtree(out, ignore_errors=True)
    lion = Path(sys.executable).parent / "lion"
    load, t0 = load_average(), time.perf_counter()
    proc = subprocess.run([str(lion), "demo", "--seed", str(seed), "--out", str(out)],
                          check=True, capture_output=True, text=True)  # fmt: skip
    minutes = (time.perf_counter() - t0) / 60
    printed = proc.stdout.split("\nholdout ", 1)[1].split("\ndemo time:", 1)[0]
    return {"seed": seed, "folder": out, "printed": printed, "minutes": round(minutes, 1),
            "load_start": load, "load_end": load_average(), **_read(out)}  # fmt: skip


def _read(out: Path) -> dict:
    demo = json.loads((out / "summary.json").read_text())
    tables = {}
    for path in [out / "results.csv", *sorted(out.glob("scores_*.csv"))]:
        with path.open(newline="") as f:
            tables[path.stem] = list(csv.DictReader(f))
    return {"summary": demo, "tables": tables}


def over_seeds(runs: list[dict]) -> dict:
    """How often organ context was ahead of tumor-only, and the spread of each arm's figures."""
    arms = [r["summary"]["arms"] for r in runs]
    o, t = [a["organs"] for a in arms], [a["tumor_only"] for a in arms]
    out = {
        "seeds": len(runs),
        "organs_less_fp_at_hot_organs": sum(
            a["fp_at_hot_organs_ml"] < b["fp_at_hot_organs_ml"] for a, b in zip(o, t, strict=True)
        ),
        "organs_higher_median_dice": sum(
            a["median_dice"] > b["median_dice"] for a, b in zip(o, t, strict=True)
        ),
        "organs_min_median_dice": min(a["median_dice"] for a in o),
        "max_minutes": max(r["minutes"] for r in runs),
    }
    for arm, values in (("organs", o), ("tumor_only", t)):
        for m in MEASURES:
            out[f"{arm}_{m}_median"] = statistics.median(v[m] for v in values)
            out[f"{arm}_{m}_min"] = min(v[m] for v in values)
            out[f"{arm}_{m}_max"] = max(v[m] for v in values)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (default 1)")
    parser.add_argument(
        "--no-repeat",
        action="store_true",
        help="do not run seed 0 a second time (repeat_identical stays null)",
    )
    parser.add_argument("--from", dest="source", help="a finished lion demo output folder")
    parser.add_argument("--commit", help="with --from: the commit the demo ran at")
    args = parser.parse_args()
    if args.source:
        store_from(Path(args.source).resolve(), args.commit)
        return
    run = Run("demo", sys.argv[1:])
    runs = [_seed_run(seed) for seed in range(args.seeds)]
    repeat = None if args.no_repeat else run_demo(0, WORK / "demo_seed0_repeat")
    first = runs[0]
    summary = {key: first["summary"][key] for key in ("seconds", "trainer", "verdict", "settings",
                                                      "arms")}  # fmt: skip
    summary["step_seconds"] = first["summary"].get("timings_s", {})
    summary["demo_minutes"] = first["minutes"]
    summary["repeat_identical"] = None if repeat is None else repeat["printed"] == first["printed"]
    summary["repeat_minutes"] = None if repeat is None else repeat["minutes"]
    summary["per_seed"] = [
        {"seed": r["seed"], "minutes": r["minutes"], "load_start": r["load_start"],
         "load_end": r["load_end"], "verdict": r["summary"]["verdict"]}
        for r in runs
    ]  # fmt: skip
    summary["over_seeds"] = over_seeds(runs)
    seeds_rows = [{"seed": r["seed"], **row} for r in runs for row in r["tables"]["results"]]
    scores = [{"seed": r["seed"], "model": name.removeprefix("scores_"), **row}
              for r in runs for name, t in r["tables"].items() if name != "results"
              for row in t]  # fmt: skip
    run.store(summary, {"results": first["tables"]["results"], "seeds": seeds_rows,
                        "scores": scores})  # fmt: skip
    if repeat is not None and not summary["repeat_identical"]:
        print("seed 0 twice gave different tables:\n" + first["printed"] + "\n" + repeat["printed"])
        raise SystemExit(1)


def _seed_run(seed: int) -> dict:
    """One seed's demo, or the one a cut-off benchmark already finished (its record kept)."""
    out = WORK / f"demo_seed{seed}"
    record = out.parent / f"demo_seed{seed}.json"
    code = code_version()
    if record.is_file() and (out / "summary.json").is_file():
        done = json.loads(record.read_text())
        # kept only when run by the same code (a run of older code, or of uncommitted changes,
        # is not what this benchmark stores) and its folder was not rewritten since
        if (
            done.get("code") == code
            and "uncommitted" not in code
            and (done["summary_mtime"] == (out / "summary.json").stat().st_mtime)
        ):
            print(f"seed {seed}: finished earlier ({done['minutes']} min), kept", flush=True)
            return {**done, "folder": out, **_read(out)}
    result = run_demo(seed, out)
    keep = {k: result[k] for k in ("seed", "printed", "minutes", "load_start", "load_end")}
    keep["summary_mtime"] = (out / "summary.json").stat().st_mtime
    keep["code"] = code
    record.write_text(json.dumps(keep))
    print(f"seed {seed}: {result['minutes']} min\n{result['printed']}", flush=True)
    return result


def store_from(out: Path, commit: str | None) -> None:
    """Store one finished ``lion demo`` folder (no seeds, no repeat)."""
    run = Run("demo", ["--from", str(out)])
    run.load_start = None  # the demo ran before this command: its start load is unknown
    found = _read(out)
    demo = found["summary"]
    summary = {key: demo[key] for key in ("seconds", "trainer", "verdict", "settings", "arms")}
    summary["step_seconds"] = demo.get("timings_s", {})
    summary["demo_minutes"] = round(demo["seconds"] / 60, 1)
    run.command = f"lion demo --out {out.name}"
    # when it started: the first step's marker was written that step's seconds after
    markers = [json.loads(m.read_text()) | {"mtime": m.stat().st_mtime}
               for m in (out / ".lion_steps").glob("*.json")]  # fmt: skip
    first = min(markers, key=lambda m: m["mtime"])
    started = dt.datetime.fromtimestamp(first["mtime"] - first["seconds"], dt.timezone.utc)
    summary["started_utc"] = started.strftime("%Y-%m-%d %H:%M")
    summary["date"] = started.strftime("%Y-%m-%d")
    if commit:
        summary["commit"] = commit
    run.store(summary, {"results": found["tables"]["results"]})


if __name__ == "__main__":
    main()
