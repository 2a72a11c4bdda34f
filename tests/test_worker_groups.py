"""``make test``'s two xdist workers: every test that uses a trained model runs in the "main"
group, so each session-scoped model is trained once per run, not once per worker; the tests on
one module's module-scoped fixture share one worker, so that fixture is built once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: A pytest plugin that writes each collected test's xdist group (after conftest's hook ran).
PLUGIN = """
import json, os

def pytest_collection_finish(session):
    groups = {}
    for item in session.items:
        marker = item.get_closest_marker("xdist_group")
        groups[item.nodeid] = marker.args[0] if marker else None
    with open(os.environ["GROUPS_OUT"], "w") as f:
        json.dump(groups, f)
"""


def test_tests_that_look_up_a_trained_model_by_parameter_share_its_worker(tmp_path: Path) -> None:
    (tmp_path / "groups_plugin.py").write_text(PLUGIN)
    out = tmp_path / "groups.json"
    env = {
        **os.environ,
        "GROUPS_OUT": str(out),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    files = [
        "tests/test_nnunet_e2e.py",
        "tests/test_seeding.py",
        "tests/test_labels.py",
        "tests/test_cohort.py",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "groups_plugin",
         "-p", "no:cacheprovider", *files],
        cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    groups = json.loads(out.read_text())
    e2e = {k: v for k, v in groups.items() if "test_nnunet_e2e" in k}
    # the e2e test names its model as a parameter (request.getfixturevalue): both params
    assert len(e2e) == 2 and set(e2e.values()) == {"main"}, e2e
    # a test that asks for the model as a fixture argument, as before
    seeding = "tests/test_seeding.py::test_same_seed_same_weights_other_seed_other_weights"
    assert groups[seeding] == "main"
    # a test that needs no model is left free
    assert {v for k, v in groups.items() if "test_labels" in k} == {None}
    # tests on a module-scoped fixture (test_cohort's cluster and predictions) share a worker;
    # its tests without one stay free
    cohort = "tests/test_cohort.py::"
    assert groups[cohort + "test_predict_on_dask_equals_single_process"] == "test_cohort"
    assert groups[cohort + "test_truncated_case_failed_others_ok"] == "test_cohort"
    assert None in {v for k, v in groups.items() if k.startswith(cohort)}
