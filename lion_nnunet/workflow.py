"""Resumable multi-step workflows that print and run the stock nnU-Net commands.

Used by ``lion demo`` and ``lion experiment``: each step is a command line (a stock ``nnUNetv2_*``
command or a ``lion`` command) or a Python callable. A finished step leaves a marker file
``<root>/.lion_steps/<step>.json`` holding the command and a fingerprint of what else decides the
step's result (for a training: the trainer class's source, the plans, the splits and the
preprocessed cases; see :mod:`lion_nnunet.provenance`). A re-run skips a step only when its marker
holds the same command and the same fingerprint, so an interrupted workflow resumes where it
stopped and a changed trainer schedule or dataset trains again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

from lion_nnunet.errors import LionError
from lion_nnunet.io import write_json

log = logging.getLogger(__name__)


class Step(NamedTuple):
    """A command step for :meth:`Workflow.run_parallel`.

    Attributes:
        name: the step's name (marker and log file names derive from it).
        command: the command line.
        outputs: paths the step must produce.
        inputs: returns the fingerprint of what decides the result besides the command (e.g.
            :func:`lion_nnunet.provenance.training_digest`); called when the step is checked, so
            it sees the outputs of the steps run before it. None: the command alone decides.
    """

    name: str
    command: Sequence[str]
    outputs: Sequence[Path] = ()
    inputs: Callable[[], str] | None = None


def console_script(name: str) -> str:
    """Path of a console script installed beside the running Python (e.g. ``nnUNetv2_train``)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


class Workflow:
    """Run named steps once each, printing what runs, logging output under ``root/logs``.

    Args:
        root: folder for markers (``.lion_steps``) and logs (``logs/<step>.log``).
        env: environment for subprocess steps (defaults to ``os.environ``).
        echo: print each step's command and a one-line result to stdout.
        show: regular expression; output lines of subprocess steps that match are echoed live
            (e.g. nnU-Net's epoch lines), all lines go to the step's log file.
        client: a Dask ``distributed.Client`` (``--cluster``): command steps then run as Dask
            tasks on its workers (each on the worker's own GPU; the paths must be on a file
            system the workers share), all steps of one :meth:`run_parallel` at once, their
            output in the log files only. None: subprocesses of this process.
    """

    def __init__(
        self,
        root: str | Path,
        env: Mapping[str, str] | None = None,
        echo: bool = True,
        show: str = r"Epoch \d+|train_loss|Pseudo dice|epoch time|Predicting|error|Error",
        client: Any = None,
    ) -> None:
        self.client = client
        self.root = Path(root)
        self.env = dict(os.environ if env is None else env)
        self.echo = echo
        self.show = re.compile(show)
        self.markers = self.root / ".lion_steps"
        self.logs = self.root / "logs"
        self.markers.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}

    def _say(self, text: str) -> None:
        if self.echo:
            print(text, flush=True)

    def _marker(self, step: str) -> Path:
        return self.markers / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', step)}.json"

    def is_done(self, step: str, signature: str, fingerprint: str = "") -> bool:
        """Whether ``step`` finished before with this command (signature) and fingerprint."""
        marker = self._marker(step)
        if not marker.is_file():
            return False
        try:
            done = json.loads(marker.read_text())
        except json.JSONDecodeError:
            return False
        return done.get("signature") == signature and done.get("fingerprint", "") == fingerprint

    def _finish(self, step: str, signature: str, seconds: float, fingerprint: str = "") -> None:
        self.timings[step] = seconds
        write_json(
            {"step": step, "signature": signature, "fingerprint": fingerprint,
             "seconds": round(seconds, 2)},
            self._marker(step),
        )  # fmt: skip

    def run(
        self,
        step: str,
        command: Sequence[str],
        outputs: Sequence[Path] = (),
        inputs: Callable[[], str] | None = None,
    ) -> float:
        """Run a command line as step ``step`` unless it already finished; return seconds taken.

        ``outputs``: paths the step must produce; checked after the run, and a missing one makes
        the step count as not done (so a re-run repeats it). ``inputs``: see :class:`Step`.
        """
        return self.run_parallel([Step(step, command, outputs, inputs)])[step]

    def run_parallel(
        self, steps: Sequence[Step], env: Mapping[str, str] | None = None
    ) -> dict[str, float]:
        """Run several command steps at the same time (each as :meth:`run` would); wait for all.

        ``env``: extra variables for these steps (e.g. ``OMP_NUM_THREADS`` so that two CPU
        trainings share the cores instead of each taking all of them). Echoed lines carry the
        step's name when more than one step runs. Every step is waited for, so a failure in one
        does not lose the other's work; then the first failure is raised.
        """
        todo: list[tuple[Step, list[str], str]] = []
        fingerprints: dict[str, str] = {}
        seconds: dict[str, float] = {}
        for s in steps:
            command = [str(c) for c in s.command]
            signature = shlex.join(command)
            printable = shlex.join([Path(command[0]).name, *command[1:]])
            fingerprints[s.name] = s.inputs() if s.inputs else ""
            if self.is_done(s.name, signature, fingerprints[s.name]) and all(
                Path(p).exists() for p in s.outputs
            ):
                self._say(f"[skip] {s.name}: done before ({printable})")
                seconds[s.name] = 0.0
                continue
            why = self._why(s.name, signature, fingerprints[s.name])
            self._say(f"[run ] {s.name}{why}\n  $ {printable}")
            todo.append((s, command, printable))
        prefix = len(todo) > 1
        # unbuffered: a long step's log and echoed lines follow it as it runs
        step_env = {**self.env, "PYTHONUNBUFFERED": "1", **(env or {})}
        logs = [self.logs / f"{self._marker(s.name).stem}.log" for s, _, _ in todo]
        if self.client is not None and todo:
            # each worker keeps its own GPU binding (LocalCUDACluster, a SLURM job's GPU)
            remote_env = {k: v for k, v in step_env.items() if k != "CUDA_VISIBLE_DEVICES"}
            futures = [
                self.client.submit(run_logged, command, log_path, remote_env, pure=False,
                                   key=f"lion-step-{s.name}-{time.time_ns()}")
                for (s, command, _), log_path in zip(todo, logs, strict=True)
            ]  # fmt: skip
            results = self.client.gather(futures)
        else:
            with ThreadPoolExecutor(max_workers=max(1, len(todo))) as pool:
                futures = [
                    pool.submit(self._follow, s.name, command, log_path, step_env, prefix)
                    for (s, command, _), log_path in zip(todo, logs, strict=True)
                ]
                results = [f.result() for f in futures]
        failures: list[str] = []
        for (s, command, printable), log_path, (code, took) in zip(
            todo, logs, results, strict=True
        ):
            if code != 0:
                tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
                failures.append(
                    f"step {s.name!r} failed with exit code {code}: {printable}\n"
                    f"last lines of {log_path}:\n{tail}"
                )
                continue
            missing = [str(p) for p in s.outputs if not Path(p).exists()]
            if missing:
                failures.append(f"step {s.name!r} finished but did not write {', '.join(missing)}")
                continue
            self._finish(s.name, shlex.join(command), took, fingerprints[s.name])
            seconds[s.name] = took
            name = f"{s.name}: " if prefix else ""
            self._say(f"       {name}done in {took:.1f} s (log: {log_path})")
        if failures:
            raise LionError(failures[0])
        return seconds

    def _why(self, step: str, signature: str, fingerprint: str) -> str:
        """Why a step that finished before with this command runs again (else nothing)."""
        try:
            done = json.loads(self._marker(step).read_text())
        except (OSError, json.JSONDecodeError):
            return ""
        if done.get("signature") != signature:
            return ""
        if done.get("fingerprint", "") != fingerprint:
            return " (same command, but its inputs changed since it ran)"
        return " (an output of its last run is missing)"

    def _follow(
        self, step: str, command: list[str], log_path: Path, env: dict[str, str], prefix: bool
    ) -> tuple[int, float]:
        """Run one command here (:func:`run_logged`), echoing the lines that match ``show``."""

        def echo(line: str) -> None:
            if self.show.search(line):
                tag = f"[{step}] " if prefix else ""
                self._say(f"    {tag}{line.rstrip()[-150:]}")

        return run_logged(command, log_path, env, echo)

    def call(self, step: str, func: Callable[[], Any], signature: str = "") -> float:
        """Run a Python callable as step ``step`` unless it already finished."""
        signature = signature or step
        if self.is_done(step, signature):
            self._say(f"[skip] {step}: done before")
            return 0.0
        self._say(f"[run ] {step}")
        start = time.perf_counter()
        func()
        seconds = time.perf_counter() - start
        self._finish(step, signature, seconds)
        self._say(f"       done in {seconds:.1f} s")
        return seconds


def run_logged(
    command: Sequence[str],
    log_path: Path,
    env: Mapping[str, str],
    echo: Callable[[str], None] | None = None,
) -> tuple[int, float]:
    """Run one command, its output into ``log_path``; return (exit code, seconds).

    Runs in this process or in a Dask worker (a module-level function, so it pickles). On a
    worker, the worker's own ``CUDA_VISIBLE_DEVICES`` is kept. The exit code is 127 when the
    command cannot start. ``echo``: called with every output line (live progress here).
    """
    env = dict(env)
    if "CUDA_VISIBLE_DEVICES" in os.environ and "CUDA_VISIBLE_DEVICES" not in env:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    start = time.perf_counter()
    log_path = Path(log_path)
    with log_path.open("w") as log_file:
        log_file.write(f"$ {shlex.join([str(c) for c in command])}\n")
        try:
            proc = subprocess.Popen(
                [str(c) for c in command],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
        except OSError as e:  # e.g. the command does not exist
            log_file.write(f"{e}\n")
            return 127, time.perf_counter() - start
        assert proc.stdout is not None  # for type checkers; PIPE was requested
        for line in proc.stdout:
            log_file.write(line)
            if echo is not None:
                echo(line)
        return proc.wait(), time.perf_counter() - start
