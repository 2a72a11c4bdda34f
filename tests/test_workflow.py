"""The resumable step runner behind `lion demo` and `lion experiment`."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

from lion_nnunet.errors import LionError
from lion_nnunet.workflow import Workflow


def _writer(path: Path, text: str) -> list[str]:
    return [sys.executable, "-c", f"open({str(path)!r}, 'a').write({text!r}); print('Epoch 1')"]


def test_step_runs_once_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out.txt"
    wf = Workflow(tmp_path / "wf")
    wf.run("write", _writer(out, "a"), outputs=[out])
    assert "Epoch 1" in capsys.readouterr().out
    Workflow(tmp_path / "wf").run("write", _writer(out, "a"), outputs=[out])
    assert out.read_text() == "a"
    assert "[skip] write" in capsys.readouterr().out
    # A changed command is a different step signature: it runs again.
    Workflow(tmp_path / "wf").run("write", _writer(out, "b"), outputs=[out])
    assert out.read_text() == "ab"
    assert (tmp_path / "wf" / "logs" / "write.log").read_text().startswith("$ ")


def test_failed_step_raises_with_log_tail_and_is_not_marked(tmp_path: Path) -> None:
    wf = Workflow(tmp_path, echo=False)
    cmd = [sys.executable, "-c", "import sys; print('boom happened'); sys.exit(3)"]
    with pytest.raises(LionError, match=r"(?s)exit code 3.*boom happened"):
        wf.run("fail", cmd)
    assert not wf.is_done("fail", "anything")
    assert list((tmp_path / ".lion_steps").iterdir()) == []


def test_missing_output_counts_as_failure(tmp_path: Path) -> None:
    wf = Workflow(tmp_path, echo=False)
    with pytest.raises(LionError, match="did not write"):
        wf.run("noop", [sys.executable, "-c", "pass"], outputs=[tmp_path / "never"])


def test_call_step(tmp_path: Path) -> None:
    calls = []
    wf = Workflow(tmp_path, echo=False)
    wf.call("py", lambda: calls.append(1))
    wf.call("py", lambda: calls.append(1))
    assert calls == [1]


def test_parallel_steps_overlap_and_get_their_env(tmp_path: Path) -> None:
    """Two 1-second steps run side by side finish in well under 2 s, each with the extra env."""
    from lion_nnunet.workflow import Step

    def sleeper(name: str) -> list[str]:
        code = (
            "import os, time; t = time.time(); time.sleep(1); "
            f"open({str(tmp_path / name)!r}, 'w').write(f\"{{t}} {{time.time()}} "
            "{os.environ['OMP_NUM_THREADS']}\")"
        )
        return [sys.executable, "-c", code]

    wf = Workflow(tmp_path / "wf", echo=False)
    steps = [Step(n, sleeper(n), [tmp_path / n]) for n in ("a", "b")]
    wf.run_parallel(steps, env={"OMP_NUM_THREADS": "1"})
    (a0, a1, at), (b0, b1, bt) = ((tmp_path / n).read_text().split() for n in ("a", "b"))
    assert (at, bt) == ("1", "1")
    assert max(float(a0), float(b0)) < min(float(a1), float(b1)), "the steps did not overlap"
    assert set(Workflow(tmp_path / "wf", echo=False).run_parallel(steps).values()) == {0.0}


def test_parallel_failure_waits_for_the_other_step(tmp_path: Path) -> None:
    from lion_nnunet.workflow import Step

    done = tmp_path / "done"
    ok = [sys.executable, "-c", f"import time; time.sleep(0.5); open({str(done)!r}, 'w')"]
    bad = [sys.executable, "-c", "import sys; print('bad arm'); sys.exit(2)"]
    wf = Workflow(tmp_path / "wf", echo=False)
    with pytest.raises(LionError, match=r"(?s)'bad'.*exit code 2.*bad arm"):
        wf.run_parallel([Step("ok", ok, [done]), Step("bad", bad)])
    assert done.exists() and wf.is_done("ok", shlex.join(ok))
    assert not wf.is_done("bad", shlex.join(bad))


def test_missing_command_fails_with_its_name(tmp_path: Path) -> None:
    wf = Workflow(tmp_path, echo=False)
    with pytest.raises(LionError, match=r"'gone' failed with exit code 127"):
        wf.run("gone", [str(tmp_path / "no-such-command")])


def test_step_with_inputs_reruns_when_they_change(tmp_path: Path) -> None:
    """Same command: an unchanged fingerprint skips the step, a changed one runs it again."""
    out = tmp_path / "out.txt"
    inputs = {"value": "first"}
    cmd = _writer(out, "x")
    for _ in range(2):
        Workflow(tmp_path / "wf", echo=False).run("w", cmd, [out], lambda: inputs["value"])
    assert out.read_text() == "x"
    inputs["value"] = "second"
    Workflow(tmp_path / "wf", echo=False).run("w", cmd, [out], lambda: inputs["value"])
    assert out.read_text() == "xx"


TRAINER_SOURCE = """
from lion_nnunet.trainers.cpu_demo import nnUNetTrainer_LION_bench


class nnUNetTrainer_ProvenanceTest(nnUNetTrainer_LION_bench):
    lion_num_epochs, lion_iterations_per_epoch = {epochs}, 50
"""


def _trainer_folder(root: Path, epochs: int) -> Path:
    """A trainer folder for nnUNet_extTrainer holding the test trainer with this schedule."""
    folder = root / f"ext_{epochs}"
    folder.mkdir(parents=True)
    # one module name per version: nnU-Net imports the folder's modules by name
    (folder / f"provenance_trainer_{epochs}.py").write_text(TRAINER_SOURCE.format(epochs=epochs))
    return folder


def _preprocessed(root: Path) -> Path:
    """A Dataset folder of nnUNet_preprocessed: plans, dataset.json, splits, two case files."""
    import json

    folder = root / "Dataset950_BenchFDG_organs"
    data = folder / "LIONPlans_3d_fullres"
    data.mkdir(parents=True)
    plans = {"configurations": {"3d_fullres": {"data_identifier": "LIONPlans_3d_fullres",
                                               "patch_size": [48, 32, 32]}}}  # fmt: skip
    (folder / "LIONPlans.json").write_text(json.dumps(plans))
    (folder / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "tumor": 1}}))
    (folder / "splits_final.json").write_text(json.dumps([{"train": ["a"], "val": ["b"]}]))
    for case, size in (("PETCT_0af7ffe12a_0", 4000), ("PETCT_1b2c3d4e5f_0", 5000)):
        (data / f"{case}.b2nd").write_bytes(b"\0" * size)
        (data / f"{case}_seg.b2nd").write_bytes(b"\0" * (size // 4))
    return folder


def test_training_step_retrains_when_schedule_plans_or_data_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step's command never changes; the trainer's source, the plans and the cases do."""
    import json

    from lion_nnunet.provenance import training_digest

    trainer = "nnUNetTrainer_ProvenanceTest"
    v60, v120 = _trainer_folder(tmp_path, 60), _trainer_folder(tmp_path, 120)
    pre = _preprocessed(tmp_path / "preprocessed")
    out = tmp_path / "trained.txt"
    cmd = _writer(out, "t")  # stands in for nnUNetv2_train (same text every time)

    def train() -> str:
        wf = Workflow(tmp_path / "wf", echo=False)
        wf.run("organs: train", cmd, [out], lambda: training_digest(pre, trainer, "LIONPlans",
                                                                  "3d_fullres"))  # fmt: skip
        return out.read_text()

    monkeypatch.setenv("nnUNet_extTrainer", str(v60))
    assert train() == "t"
    assert train() == "t", "unchanged trainer, plans and data: the step must be skipped"
    monkeypatch.setenv("nnUNet_extTrainer", str(v120))  # the schedule changed: 60 -> 120 epochs
    assert train() == "tt"
    assert train() == "tt"
    plans = json.loads((pre / "LIONPlans.json").read_text())
    plans["configurations"]["3d_fullres"]["patch_size"] = [64, 32, 32]
    (pre / "LIONPlans.json").write_text(json.dumps(plans))
    assert train() == "ttt"
    # what nnU-Net's training itself writes there (unpacked .npz cases) does not count
    (pre / "LIONPlans_3d_fullres" / "PETCT_0af7ffe12a_0.npy").write_bytes(b"\0" * 9000)
    assert train() == "ttt"
    (pre / "LIONPlans_3d_fullres" / "PETCT_2c3d4e5f6a_0.b2nd").write_bytes(b"\0" * 100)
    assert train() == "tttt"
    (pre / "splits_final.json").write_text(json.dumps([{"train": ["b"], "val": ["a"]}]))
    assert train() == "ttttt"


def test_unknown_trainer_in_a_fingerprint_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lion_nnunet.provenance import training_digest

    monkeypatch.setenv("nnUNet_extTrainer", str(tmp_path))
    with pytest.raises(LionError, match=r"nnUNetTrainer_NoSuchThing.*not found"):
        training_digest(tmp_path, "nnUNetTrainer_NoSuchThing", "LIONPlans", "3d_fullres")


def test_marker_without_fingerprint_reruns_a_step_that_now_has_inputs(tmp_path: Path) -> None:
    """Markers of older runs (command only) do not vouch for the inputs: the step runs again."""
    out = tmp_path / "out.txt"
    cmd = _writer(out, "o")
    Workflow(tmp_path / "wf", echo=False).run("train", cmd, [out])
    Workflow(tmp_path / "wf", echo=False).run("train", cmd, [out], lambda: "trainer digest")
    assert out.read_text() == "oo"


def test_steps_run_side_by_side_as_dask_tasks_in_worker_processes(tmp_path: Path) -> None:
    """``lion experiment --cluster``: each step of a run_parallel is a task on a Dask worker."""
    from distributed import Client, LocalCluster

    from lion_nnunet.workflow import Step

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)  # fmt: skip
    client = Client(cluster)
    try:
        workers = set(client.run(os.getpid).values())
        assert len(workers) == 2 and os.getpid() not in workers
        # each step records the process that started it, then waits for the other step's
        # file: the two can only finish when they run at the same time
        code = ("import os, sys, time, pathlib; me, other = map(pathlib.Path, sys.argv[1:]); "
                "me.write_text(str(os.getppid())); t = time.time()\n"
                "while not other.exists() and time.time() - t < 60: time.sleep(0.05)\n"
                "sys.exit(0 if other.exists() else 4)")  # fmt: skip
        a, b = tmp_path / "a.pid", tmp_path / "b.pid"
        steps = [Step("arm a", [sys.executable, "-c", code, str(a), str(b)], [a]),
                 Step("arm b", [sys.executable, "-c", code, str(b), str(a)], [b])]  # fmt: skip
        wf = Workflow(tmp_path / "wf", echo=False, client=client)
        wf.run_parallel(steps)
        assert {int(a.read_text()), int(b.read_text())} <= workers
        assert wf.is_done("arm a", shlex.join(steps[0].command))
        assert (tmp_path / "wf" / "logs" / "arm_b.log").read_text().startswith("$ ")
        # a re-run skips both; a failing step is named, the other step's marker is written
        before = a.stat().st_mtime_ns
        assert wf.run_parallel(steps) == {"arm a": 0.0, "arm b": 0.0}
        assert a.stat().st_mtime_ns == before
        bad = Step("bad", [sys.executable, "-c", "import sys; print('no GPU'); sys.exit(3)"])
        good = Step("good", _writer(tmp_path / "good.txt", "g"), [tmp_path / "good.txt"])
        with pytest.raises(LionError, match=r"(?s)'bad' failed with exit code 3.*no GPU"):
            wf.run_parallel([bad, good])
        assert wf.is_done("good", shlex.join(good.command))
    finally:
        client.close()
        cluster.close()


def test_experiment_takes_a_cluster(capsys: pytest.CaptureFixture) -> None:
    from lion_nnunet.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["experiment", "scaling", "--dataset", "1", "--subset-sizes", "2", "--out", "x",
              "--cluster", "local:zero"])  # fmt: skip
    assert stop.value.code == 2 and "--cluster" in capsys.readouterr().err
