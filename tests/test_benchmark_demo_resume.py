"""benchmarks/demo.py resumes a cut-off run only with seeds the same code finished.

The demo itself is not run here (6 minutes a seed): ``run_demo`` is replaced by a function
that writes a finished demo folder, so what is tested is the decision to keep or rerun.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture()
def bench(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    sys.modules.pop("demo", None)
    import demo

    monkeypatch.setattr(demo, "WORK", tmp_path)
    runs: list[int] = []

    def fake_run_demo(seed: int, out: Path) -> dict:  # a finished demo folder, as lion demo's
        runs.append(seed)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps({"arms": {}, "run": len(runs)}))
        (out / "results.csv").write_text("model,median_dice\norgans,0.6\n")
        return {"seed": seed, "folder": out, "printed": "table", "minutes": 6.0,
                "load_start": 1.0, "load_end": 1.0, **demo._read(out)}  # fmt: skip

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    yield demo, runs
    sys.modules.pop("demo", None)


def test_a_seed_finished_by_the_same_code_is_kept(bench, monkeypatch) -> None:
    demo, runs = bench
    monkeypatch.setattr(demo, "code_version", lambda: "aaa bbb")
    demo._seed_run(0)
    kept = demo._seed_run(0)
    assert runs == [0]  # the second call kept the first run's folder
    assert kept["summary"]["run"] == 1


@pytest.mark.parametrize(
    ("first", "then"),
    [("aaa bbb", "ccc bbb"),  # lion_nnunet changed since
     ("aaa bbb +uncommitted changes", "aaa bbb +uncommitted changes")],  # not a committed state
)  # fmt: skip
def test_a_seed_of_other_or_uncommitted_code_runs_again(bench, monkeypatch, first, then) -> None:
    demo, runs = bench
    monkeypatch.setattr(demo, "code_version", lambda: first)
    demo._seed_run(3)
    monkeypatch.setattr(demo, "code_version", lambda: then)
    again = demo._seed_run(3)
    assert runs == [3, 3]
    assert again["summary"]["run"] == 2


def test_code_version_names_the_trees_of_the_package_and_script() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from store import code_version
    finally:
        sys.path.remove(str(BENCHMARKS))
    parts = code_version().split()
    if parts == ["unknown"]:
        pytest.skip("not a git checkout")
    assert len(parts[0]) == 12 and len(parts[1]) == 12
    assert all(c in "0123456789abcdef" for c in parts[0] + parts[1])
