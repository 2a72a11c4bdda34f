"""The resumable step runner behind `lion demo` and `lion experiment`."""

from __future__ import annotations

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
