"""Resumable multi-step workflows that print and run the stock nnU-Net commands.

Used by ``lion demo`` and ``lion experiment``: each step is a command line (a stock ``nnUNetv2_*``
command or a ``lion`` command) or a Python callable. A finished step leaves a marker file
``<root>/.lion_steps/<step>.json`` holding the command; a re-run skips steps whose marker exists and
whose command is unchanged, so an interrupted workflow resumes where it stopped.
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
from pathlib import Path
from typing import Any

from lion_nnunet.errors import LionError
from lion_nnunet.io import write_json

log = logging.getLogger(__name__)


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
    """

    def __init__(
        self,
        root: str | Path,
        env: Mapping[str, str] | None = None,
        echo: bool = True,
        show: str = r"Epoch \d+|train_loss|Pseudo dice|epoch time|Predicting|error|Error",
    ) -> None:
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

    def is_done(self, step: str, signature: str) -> bool:
        marker = self._marker(step)
        if not marker.is_file():
            return False
        try:
            return json.loads(marker.read_text()).get("signature") == signature
        except json.JSONDecodeError:
            return False

    def _finish(self, step: str, signature: str, seconds: float) -> None:
        self.timings[step] = seconds
        write_json(
            {"step": step, "signature": signature, "seconds": round(seconds, 2)}, self._marker(step)
        )

    def run(self, step: str, command: Sequence[str], outputs: Sequence[Path] = ()) -> float:
        """Run a command line as step ``step`` unless it already finished; return seconds taken.

        ``outputs``: paths the step must produce; checked after the run, and a missing one makes
        the step count as not done (so a re-run repeats it).
        """
        command = [str(c) for c in command]
        signature = shlex.join(command)
        printable = shlex.join([Path(command[0]).name, *command[1:]])
        if self.is_done(step, signature) and all(Path(p).exists() for p in outputs):
            self._say(f"[skip] {step}: done before ({printable})")
            return 0.0
        self._say(f"[run ] {step}\n  $ {printable}")
        log_path = self.logs / f"{self._marker(step).stem}.log"
        start = time.perf_counter()
        with log_path.open("w") as log_file:
            log_file.write(f"$ {signature}\n")
            proc = subprocess.Popen(
                command,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
            assert proc.stdout is not None  # for type checkers; PIPE was requested
            for line in proc.stdout:
                log_file.write(line)
                if self.show.search(line):
                    self._say("    " + line.rstrip()[-150:])
            code = proc.wait()
        seconds = time.perf_counter() - start
        if code != 0:
            tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
            raise LionError(
                f"step {step!r} failed with exit code {code}: {printable}\n"
                f"last lines of {log_path}:\n{tail}"
            )
        missing = [str(p) for p in outputs if not Path(p).exists()]
        if missing:
            raise LionError(f"step {step!r} finished but did not write {', '.join(missing)}")
        self._finish(step, signature, seconds)
        self._say(f"       done in {seconds:.1f} s (log: {log_path})")
        return seconds

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
