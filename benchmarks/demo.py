"""`lion demo` as a stored result: its summary, table and per-case scores in results/demo/.

    python benchmarks/demo.py                     # run lion demo (benchmarks/work/demo), store it
    python benchmarks/demo.py --from lion_demo/   # store a finished `lion demo --out lion_demo/`

Stores ``summary.json`` (the demo's own summary plus command, date, commit, machine and load
average), ``results.csv`` (one row per model) and ``scores_<model>.csv`` (one row per holdout
case) in ``benchmarks/results/demo/``; docs/reproducing.md shows them (``make_docs.py``).
With ``--from`` the load average at the demo's start was not recorded (stored as null).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from store import Run

WORK = Path(__file__).resolve().parent / "work" / "demo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", help="a finished lion demo output folder")
    parser.add_argument("--commit", help="with --from: the commit the demo ran at")
    args = parser.parse_args()
    if args.source:
        out = Path(args.source).resolve()
        run = Run("demo", ["--from", str(out)])
        run.load_start = None  # the demo ran before this command: its start load is unknown
    else:
        out = WORK
        run = Run("demo", [])
        lion = Path(sys.executable).parent / "lion"
        subprocess.run([str(lion), "demo", "--out", str(out)], check=True)
    demo = json.loads((out / "summary.json").read_text())
    tables = {}
    for path in [out / "results.csv", *sorted(out.glob("scores_*.csv"))]:
        with path.open(newline="") as f:
            tables[path.stem] = list(csv.DictReader(f))
    summary = {key: demo[key] for key in ("seconds", "trainer", "verdict", "settings", "arms")}
    summary["step_seconds"] = demo.get("timings_s", {})
    summary["minutes"] = round(demo["seconds"] / 60, 1)
    if args.source:
        run.command = f"lion demo --out {out.name}"
        # when it started: the first step's marker was written that step's seconds after
        markers = [json.loads(m.read_text()) | {"mtime": m.stat().st_mtime}
                   for m in (out / ".lion_steps").glob("*.json")]  # fmt: skip
        first = min(markers, key=lambda m: m["mtime"])
        started = dt.datetime.fromtimestamp(first["mtime"] - first["seconds"], dt.timezone.utc)
        summary["started_utc"] = started.strftime("%Y-%m-%d %H:%M")
        summary["date"] = started.strftime("%Y-%m-%d")
        if args.commit:
            summary["commit"] = args.commit
    run.store(summary, tables)


if __name__ == "__main__":
    main()
