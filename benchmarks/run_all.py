"""Run the benchmarks, each storing its results in benchmarks/results/, then render the docs.

    python benchmarks/run_all.py            # full sizes (hours on a small CPU machine)
    python benchmarks/run_all.py --quick    # small sizes
    python benchmarks/run_all.py --only convert evaluate

Each benchmark writes ``benchmarks/results/<name>/summary.json`` and its raw CSVs
(``store.py``); afterwards ``make_docs.py`` renders docs/benchmarks.md and the generated blocks
of docs/reproducing.md from every stored result (those of benchmarks not run this time stay as
they were stored). Commit ``benchmarks/results/`` with the docs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: A benchmark prints this before its result lines (the end of its console output).
SUMMARY_MARK = "== summary"


def main() -> None:
    import make_docs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument("--only", nargs="+", choices=sorted(make_docs.BENCHMARKS),
                        help="run only these")  # fmt: skip
    args = parser.parse_args()
    failed = []
    for name in make_docs.BENCHMARKS:
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, str(HERE / f"{name}.py")] + (["--quick"] if args.quick else [])
        print(f"running {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        code = subprocess.run(cmd, stdin=subprocess.DEVNULL).returncode
        print(f"  {name}: {(time.perf_counter() - start) / 60:.1f} min, exit {code}", flush=True)
        if code:
            failed.append(name)
    make_docs.main([])
    if failed:
        sys.exit(f"failed (their stored results are unchanged): {', '.join(failed)}")


if __name__ == "__main__":
    main()
