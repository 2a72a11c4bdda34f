"""Where every benchmark keeps its numbers: ``benchmarks/results/<name>/`` (committed, small).

Each run writes ``summary.json`` (the figures the docs show, plus how they were made: command,
UTC date and time, commit, machine, the 1-minute load average at the start and at the end, and
minutes taken) and its raw rows as CSV (per case, per iteration or per worker). Nothing in
docs/benchmarks.md or in the generated blocks of docs/reproducing.md comes from anywhere else
(``benchmarks/make_docs.py`` renders them; ``tests/test_docs_numbers.py`` checks).

A benchmark measured under load (other work on the machine) says so with its load average; the
docs report ratios measured within one run, never seconds compared across runs.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def load_average() -> float | None:
    """The 1-minute load average, rounded (None where the OS has none)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def machine() -> dict:
    """CPU cores (affinity), RAM, GPU, Python and torch versions of this machine."""
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        gpu, torch_version = "unknown", "not installed"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ram_gib = None
    if Path("/proc/meminfo").is_file():
        kb = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        ram_gib = round(int(kb.group(1)) / 1024**2) if kb else None
    return {"arch": platform.machine(), "cpu_cores": cores, "ram_gib": ram_gib, "gpu": gpu,
            "python": platform.python_version(), "torch": torch_version}  # fmt: skip


def git(*args: str) -> str:
    """A git command's output in this checkout (raises CalledProcessError, OSError)."""
    return subprocess.run(["git", "-C", str(HERE.parent), *args], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip


def code_version(script: str = "benchmarks/demo.py") -> str:
    """The code a run measures: git's tree ids of lion_nnunet and ``script`` (they change only
    when that code does, not with a docs commit), ``+uncommitted changes`` when either differs
    from them; "unknown" outside git."""
    try:
        trees = git("rev-parse", "HEAD:lion_nnunet", f"HEAD:{script}").split()
        dirty = git("status", "--porcelain", "--", "lion_nnunet", script)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return " ".join(t[:12] for t in trees) + (" +uncommitted changes" if dirty else "")


def _commit(script: str) -> str:
    """Short commit; ``+uncommitted changes`` when lion_nnunet or the script differ from it."""

    try:
        out = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "lion_nnunet", script, "benchmarks/store.py")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out + ("+uncommitted changes" if dirty else "")


class Run:
    """One benchmark run: started when made, stored by :meth:`store`.

    Args:
        name: the benchmark (results go to ``results/<name>/``).
        argv: the command's arguments after the script (e.g. ``["--quick"]``).
        script: the script's name when it is not ``name`` (one script, several result folders).
    """

    def __init__(
        self, name: str, argv: Sequence[str] | None = None, script: str | None = None
    ) -> None:
        self.name = name
        self.script = f"benchmarks/{script or name}.py"
        args = list(sys.argv[1:] if argv is None else argv)
        self.command = " ".join(["python", self.script, *args])
        self.started = dt.datetime.now(dt.timezone.utc)
        self.load_start = load_average()
        self._t0 = time.perf_counter()

    @property
    def folder(self) -> Path:
        return RESULTS / self.name

    def store(self, summary: Mapping, tables: Mapping[str, Sequence[Mapping]] = ()) -> Path:
        """Write ``summary.json`` (provenance + ``summary``) and one CSV per raw table."""
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {
            "benchmark": self.name,
            "command": self.command,
            "started_utc": self.started.strftime("%Y-%m-%d %H:%M"),
            "date": self.started.strftime("%Y-%m-%d"),
            "commit": _commit(self.script),
            "machine": machine(),
            "load_average_1min": {"start": self.load_start, "end": load_average()},
            "minutes": round((time.perf_counter() - self._t0) / 60, 1),
            **summary,
            "raw": {name: f"{name}.csv" for name in dict(tables)},
        }
        for old in self.folder.glob("*.csv"):  # rows of an earlier run must not linger
            old.unlink()
        for name, rows in dict(tables).items():
            write_rows(rows, self.folder / f"{name}.csv")
        path = self.folder / "summary.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
        tmp.replace(path)
        print(f"wrote {path.relative_to(HERE.parent)} and {len(dict(tables))} raw table(s)")
        return path


def write_rows(rows: Sequence[Mapping], path: Path) -> None:
    """Rows (dicts with the same keys) as CSV; floats rounded to 6 significant digits."""
    rows = list(rows)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    tmp.replace(path)
