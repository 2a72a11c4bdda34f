"""Where `make test`'s CPU time goes: per test and per command, stored for the next speed-up.

    python benchmarks/suite_cpu.py                       # make test's pytest command
    python benchmarks/suite_cpu.py -- tests/test_docs.py -k README    # a part of it

On 2 cores the suite's wall time is its CPU time over 2 (both xdist workers busy all along), so
a faster suite needs less CPU, and this says where it goes. Every Python process the run starts
loads a ``sitecustomize`` from a temporary folder put first on ``PYTHONPATH``; at exit it appends
one line to a log: its command line, the test that started it (pytest's ``PYTEST_CURRENT_TEST``,
which child processes inherit), its own CPU seconds and those of the children it waited for.

Stored in ``benchmarks/results/suite_cpu/``: ``summary.json`` (totals: the pytest run's CPU,
the workers' own, their child processes'), ``tests.csv`` (per test: CPU seconds of the processes
it started, children included, and how many) and ``commands.csv`` (per command: ``lion
predict``, ``nnUNetv2_train``, ...; count, own CPU, with children). Limits: a process killed by a
signal (nnU-Net's pool workers, ended by ``Pool.terminate``) writes no line, but its CPU is in
its parent's children figure once reaped; non-Python processes (Chromium, node, bash) count only
in the figure of the Python process that waited for them; in-process tests count in the workers'
own CPU, not per test; where bash ends a script by ``exec``-ing its last command (the docs tests'
blocks), that command's children figure also holds the block's earlier commands.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from store import Run
from suite import COMMAND  # make test's pytest command

ROOT = Path(__file__).resolve().parent.parent
PYTEST_MAIN = "pytest/__main__.py"  # sys.argv[0] of ``python -m pytest``

#: The sitecustomize every Python process of the run loads (LION_CPU_LOG names the log).
LOGGER = """
import atexit, json, os, sys, time
_LOG = os.environ.get("LION_CPU_LOG")
if _LOG:
    _T0 = time.time()

    def _write(_how):
        t = os.times()
        line = {"pid": os.getpid(), "ppid": os.getppid(), "argv": sys.argv[:4],
                "test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" (")[0],
                "cpu": t.user + t.system, "children_cpu": t.children_user + t.children_system,
                "wall": time.time() - _T0}
        try:
            with open(_LOG, "a") as f:
                f.write(json.dumps(line) + "\\n")
        except OSError:
            pass

    atexit.register(_write, "exit")
    _exit = os._exit

    def _logged_exit(code, _exit=_exit):
        _write("_exit")
        _exit(code)

    os._exit = _logged_exit
"""


def command_name(argv: list[str]) -> str:
    """``lion predict``, ``nnUNetv2_train``, ... from a logged command line."""
    if not argv:
        return "?"
    name = Path(argv[0]).name
    if name == "-c":  # python -c: inline scripts, and the children of a -c process
        return "python -c"
    if name == "lion" and len(argv) > 1:
        return f"lion {argv[1]}"
    return name


def summarise(lines: list[dict]) -> tuple[dict, list[dict], list[dict]]:
    """Totals, per-test rows and per-command rows of the logged processes."""
    by_pid = {line["pid"]: line for line in lines}
    pytest_main = [ln for ln in lines if ln["argv"][:1] and ln["argv"][0].endswith(PYTEST_MAIN)]
    main_pids = {ln["pid"] for ln in pytest_main}
    workers = [ln for ln in lines if ln["ppid"] in main_pids]
    worker_pids = {ln["pid"] for ln in workers}

    def spawned(line: dict) -> bool:  # a pool worker: same command line as its parent
        parent = by_pid.get(line["ppid"])
        return parent is not None and parent["argv"] == line["argv"]

    tests: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    for line in lines:
        if line["ppid"] in worker_pids:  # started by a test: its whole subtree's CPU
            row = tests[line["test"] or "(between tests)"]
            row[0] += line["cpu"] + line["children_cpu"]
            row[1] += 1
    commands: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for line in lines:
        if line["pid"] in main_pids | worker_pids or spawned(line):
            continue
        row = commands[command_name(line["argv"])]
        row[0] += 1
        row[1] += line["cpu"]
        row[2] += line["cpu"] + line["children_cpu"]
    total = sum(ln["cpu"] + ln["children_cpu"] for ln in pytest_main)
    totals = {
        "cpu_seconds": round(total, 1),
        "workers_own_cpu_seconds": round(sum(w["cpu"] for w in workers), 1),
        "workers_children_cpu_seconds": round(sum(w["children_cpu"] for w in workers), 1),
        "processes_logged": len(lines),
    }
    test_rows = [{"test": t, "cpu_seconds": round(c, 1), "processes": n}
                 for t, (c, n) in sorted(tests.items(), key=lambda kv: -kv[1][0])]  # fmt: skip
    command_rows = [
        {"command": k, "runs": n, "own_cpu_seconds": round(own, 1),
         "with_children_cpu_seconds": round(incl, 1)}
        for k, (n, own, incl) in sorted(commands.items(), key=lambda kv: -kv[1][1])
    ]  # fmt: skip
    return totals, test_rows, command_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pytest_args", nargs="*", help="after --: pytest arguments instead of "
                        "the whole suite (e.g. -- tests/test_docs.py -k README)")  # fmt: skip
    args = parser.parse_args()
    run = Run("suite_cpu", sys.argv[1:], script="suite_cpu")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sitecustomize.py").write_text(LOGGER)
        log = Path(tmp) / "cpu.jsonl"
        env = {
            **os.environ,
            "LION_CPU_LOG": str(log),
            "PYTHONPATH": os.pathsep.join(p for p in (tmp, os.environ.get("PYTHONPATH")) if p),
        }
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, *COMMAND, *args.pytest_args], cwd=ROOT, env=env)
        seconds = time.perf_counter() - t0
        lines = [json.loads(x) for x in log.read_text().splitlines()] if log.is_file() else []
    totals, tests, commands = summarise(lines)
    summary = {"pytest_seconds": round(seconds, 1), "exit_code": proc.returncode, **totals,
               "pytest_args": args.pytest_args}  # fmt: skip
    run.store(summary, {"tests": tests, "commands": commands})
    print(json.dumps(totals))
    for row in tests[:15]:
        print(f"{row['cpu_seconds']:8.1f} s  {row['test']}")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
