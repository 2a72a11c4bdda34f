"""Shared fixtures. Topic fixtures live in fixtures_*.py beside this file and are imported here."""

from __future__ import annotations

import os

# One compute thread per process: `make test` runs two xdist workers on two cores, and torch (or
# BLAS) threads of two processes sharing two cores wait on each other's preempted threads (an
# epoch measured 8 s alone and 155 s oversubscribed). Set before anything imports torch; every
# subprocess a test starts inherits it, and the LION trainers honour it on CPU. A value the
# caller exported wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# nnU-Net's pools for the tests' tiny cases: one worker per pool (nnU-Net's validation export,
# metrics, fingerprint and preprocessing pools are spawned processes, and each one imports torch
# and nnU-Net, about 5 s of CPU, for a few milliseconds of work here) and one augmentation worker
# (forked, cheap; 0 would crash nnU-Net 2.8's planner: torch.set_num_threads(0) in
# static_estimate_VRAM_usage). The README's sandbox: 92 s of CPU with 2 + 2 workers, 68 s with 1.
os.environ.setdefault("nnUNet_compile", "false")
os.environ.setdefault("nnUNet_def_n_proc", "1")
os.environ.setdefault("nnUNet_n_proc_DA", "1")

from collections.abc import Iterator
from pathlib import Path

import pytest

from lion_nnunet.nnunet_env import CPU_FRIENDLY_ENV

#: What the nnU-Net folders fixtures set: the values above (a value the caller exported wins).
TEST_NNUNET_ENV = {key: os.environ[key] for key in CPU_FRIENDLY_ENV}

# session fixtures that train a model with the stock nnU-Net commands (minutes each)
TRAINED = {"trained_fdg_model", "trained_psma_model", "trained_lionz_model", "click_model"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Two groups for ``make test``'s ``pytest -n 2 --dist loadgroup`` (pytest-xdist), and
    ``gpu``-marked tests skipped where torch sees no CUDA device.

    The tests that use a session-scoped trained model share one group (one worker), so each
    model is trained once per run: by fixture name, or by a parameter naming the fixture
    (``request.getfixturevalue(which)``, which pytest cannot see at collection; such a test on
    the other worker trained its own copy of the model). The other tests that use a
    module-scoped fixture run on one worker per module (group: the module's name), so the
    fixture is built once, not once per worker. Every other test goes to whichever worker is free.
    """
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if gpu:
        import torch

        if not torch.cuda.is_available():
            skip = pytest.mark.skip(reason="gpu test: no CUDA device (torch.cuda.is_available())")
            for item in gpu:
                item.add_marker(skip)
    for item in items:
        if item.get_closest_marker("xdist_group") is None and TRAINED & _fixtures_asked(item):
            item.add_marker(pytest.mark.xdist_group("main"))
    for item in items:  # a module's fixture (a model, a cohort, a cluster) built on one worker
        if item.get_closest_marker("xdist_group") is None and _uses_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


def _uses_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(d.scope == "module" for defs in info.name2fixturedefs.values() for d in defs)


def _fixtures_asked(item: pytest.Item) -> set[str]:
    """The fixtures a test uses, and the string parameters it may look up as fixtures."""
    names = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        names |= {v for v in callspec.params.values() if isinstance(v, str)}
    return names


def _set_nnunet_env(mp: pytest.MonkeyPatch, root: Path) -> dict[str, Path]:
    dirs = {}
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        dirs[var] = root / var
        dirs[var].mkdir(parents=True, exist_ok=True)
        mp.setenv(var, str(dirs[var]))
    for key in CPU_FRIENDLY_ENV:
        mp.setenv(key, TEST_NNUNET_ENV[key])
    return dirs


@pytest.fixture
def nnunet_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Fresh nnUNet_raw/preprocessed/results folders under tmp_path, set in the environment."""
    return _set_nnunet_env(monkeypatch, tmp_path / "nnunet")


@pytest.fixture(scope="session")
def session_nnunet_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """nnU-Net folders shared by the session-scoped end-to-end fixtures."""
    with pytest.MonkeyPatch.context() as mp:
        yield _set_nnunet_env(mp, tmp_path_factory.mktemp("nnunet_session"))


#: The skip reason's start of the review page's browser tests (tests/test_review.py).
BROWSER_SKIP = "browser tests need"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Say loudly, at the very end, how many tests were skipped for want of a browser."""
    skipped = [
        r for r in terminalreporter.stats.get("skipped", [])
        if BROWSER_SKIP in str(getattr(r, "longrepr", ""))
    ]  # fmt: skip
    if skipped:
        terminalreporter.write_sep("!", f"{len(skipped)} browser tests of the review page SKIPPED")
        terminalreporter.write_line(
            "They need Debian's Chromium and chromedriver; enable them with: "
            "sudo apt-get install chromium chromium-driver  (make test does it where it is root)"
        )


from fixtures_clicks import *  # noqa: E402, F403
from fixtures_cohorts import *  # noqa: E402, F403
from fixtures_lionz import *  # noqa: E402, F403
from fixtures_nnunet import *  # noqa: E402, F403
