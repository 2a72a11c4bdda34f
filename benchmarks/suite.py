"""How long `make test`'s pytest run takes here, and its slowest tests: stored, for the README.

    python benchmarks/suite.py              # the README's test command (pytest -n 2), timed
    python benchmarks/suite.py --load 2     # the same beside 2 busy processes (load average ~4)

Runs exactly the pytest command of ``make test`` (``-n 2 --dist loadgroup``), with a JUnit XML
report for the per-test times (setup + call + teardown, so a test that builds a session fixture
carries that cost). Stores ``summary.json`` (pytest seconds, counts, the slowest test, the load
average at start and end) and ``tests.csv`` (every test's seconds, slowest first) in
``benchmarks/results/suite/``. On a loaded machine the load average says so; run it on a quiet
one for the README's figure. ``--load N`` runs N busy-looping processes beside pytest for its
whole run, so the load average is about 2 + N on 2 cores (pytest's two workers and the N loops):
a loaded machine made on purpose, stored in ``benchmarks/results/suite_loaded/``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from store import Run

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ["-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider"]


#: One busy CPU: what ``--load`` starts N of.
SPIN = "while True: pass"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="busy processes beside pytest (results/suite_loaded/)")  # fmt: skip
    args = parser.parse_args()
    run = Run("suite_loaded" if args.load else "suite", sys.argv[1:], script="suite")
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.load)]
    loads: list[float] = []
    done = threading.Event()

    def sample() -> None:  # the 1-minute load average every 15 s while pytest runs
        while not done.wait(15):
            loads.append(os.getloadavg()[0])

    threading.Thread(target=sample, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            xml = Path(tmp) / "junit.xml"
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, *COMMAND, f"--junitxml={xml}"], cwd=ROOT)
            seconds = time.perf_counter() - t0
            tests = _tests(xml)
    finally:
        done.set()
        for spinner in spinners:
            spinner.kill()
    tests.sort(key=lambda t: -t["seconds"])
    count = {o: sum(t["outcome"] == o for t in tests) for o in ("passed", "failure", "error",
                                                                  "skipped")}  # fmt: skip
    summary = {
        "pytest_seconds": round(seconds, 1),
        "pytest_minutes": round(seconds / 60, 1),
        "exit_code": proc.returncode,
        "tests_passed": count["passed"],
        "tests_failed": count["failure"] + count["error"],
        "tests_skipped": count["skipped"],
        "slowest_test": tests[0]["test"],
        "slowest_test_seconds": round(tests[0]["seconds"], 1),
        "tests_over_180_s": sum(t["seconds"] > 180 for t in tests),
        "busy_processes_beside": args.load,
        "load_average_during": round(sum(loads) / len(loads), 2) if loads else None,
    }
    run.store(summary, {"tests": tests})
    print({k: summary[k] for k in ("pytest_minutes", "tests_passed", "tests_failed",
                                   "slowest_test", "slowest_test_seconds")})  # fmt: skip
    sys.exit(proc.returncode)


def _tests(xml: Path) -> list[dict]:
    """Every test of the JUnit report: name, seconds (setup + call + teardown), outcome."""
    tests = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "")
        tests.append({"test": f"{case.get('classname')}::{case.get('name')}",
                      "seconds": float(case.get("time", 0)),
                      "outcome": outcome or "passed"})  # fmt: skip
    return tests


if __name__ == "__main__":
    main()
