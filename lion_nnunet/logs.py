"""The run's log: what other libraries print goes to logging, and logging to the console and a file.

The library never prints another package's chatter: :func:`captured` turns what a call prints
(nnU-Net narrates its trainer search and device choices on stdout) into log records of a logger
named after that package. The ``lion`` command line (:func:`setup`) then shows the run's own
records (loggers under ``lion_nnunet``) on stderr at the level of ``-v``/``-q``, every other
library's records (captured prints, Python warnings such as torch's FutureWarnings) only from
ERROR (or with ``-vv``), and writes all of them, from INFO, to ``<output folder>/lion.log``.

Examples:
    >>> import logging
    >>> with captured("somelib"):
    ...     print("narration nobody asked for")  # becomes an INFO record of logger "somelib"
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

OWN = "lion_nnunet"
LOG_FILE = "lion.log"
FORMAT = "%(levelname)s %(name)s: %(message)s"


class _LineLogger(io.TextIOBase):
    """A text stream that logs every line written to it."""

    def __init__(self, logger: logging.Logger, level: int) -> None:
        self.logger, self.level, self.pending = logger, level, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if line.strip():
                self.logger.log(self.level, line.rstrip())
        return len(text)

    def flush(self) -> None:
        if self.pending.strip():
            self.logger.log(self.level, self.pending.rstrip())
        self.pending = ""


@contextlib.contextmanager
def captured(source: str, level: int = logging.INFO) -> Iterator[None]:
    """Log what the block prints (stdout and stderr) as records of the logger ``source``.

    Redirects ``sys.stdout``/``sys.stderr`` for the block: use it around a call into another
    package that prints, in one thread (the redirection is process-wide).
    """
    stream = _LineLogger(logging.getLogger(source), level)
    try:
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            yield
    finally:
        stream.flush()


def is_own(record: logging.LogRecord) -> bool:
    """A record of this package's own loggers (not another library's, not a Python warning)."""
    return record.name == OWN or record.name.startswith(OWN + ".")


class _ConsoleFilter(logging.Filter):
    """The run's own records from ``own_level``, other libraries' from ``other_level``."""

    def __init__(self, own_level: int, other_level: int) -> None:
        super().__init__()
        self.own_level, self.other_level = own_level, other_level

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "file_only", False):
            return False
        return record.levelno >= (self.own_level if is_own(record) else self.other_level)


def to_file_only(message: str) -> None:
    """An ERROR record for lion.log alone (the console got the message already)."""
    logging.getLogger(OWN).error(message, extra={"file_only": True})


def _contents(folder: Path) -> frozenset[tuple[str, int]] | None:
    """What ``folder`` holds, one level deep: (name, mtime in ns) of each entry but lion.log (a
    subfolder's mtime changes when a file in it is added, replaced or removed); None if absent."""
    try:
        with os.scandir(folder) as entries:
            return frozenset((e.name, e.stat(follow_symlinks=False).st_mtime_ns)
                             for e in entries if e.name != LOG_FILE)  # fmt: skip
    except (FileNotFoundError, NotADirectoryError):
        return None


class FolderLogHandler(logging.Handler):
    """Appends records to ``folder/lion.log`` once the run has changed the folder; holds them
    until then.

    The run changed the folder when it created it, or added, replaced or removed an entry in it or
    in one of its subfolders. A run that changes nothing (a refused one: bad input, an existing
    output without ``--overwrite``) leaves the folder exactly as it was: its held records are
    dropped at :meth:`close`. Once the folder has changed, records are written as they come.
    """

    #: Seconds between two looks at a folder that has not changed yet.
    LOOK_EVERY_S = 1.0

    def __init__(self, folder: str | Path, header: str) -> None:
        super().__init__(logging.INFO)
        self.path = Path(folder) / LOG_FILE
        self.held: list[str] = [header]
        self.setFormatter(logging.Formatter("%(asctime)s " + FORMAT))
        self.before = _contents(self.path.parent)
        self.changed = False
        self.next_look = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.held.append(self.format(record))
            self._write()
        except Exception:  # a log file that cannot be written must not stop the run
            self.handleError(record)

    def _has_changed(self, now: bool = False) -> bool:
        if not self.changed and (now or time.monotonic() >= self.next_look):
            self.next_look = time.monotonic() + self.LOOK_EVERY_S
            after = _contents(self.path.parent)
            self.changed = after is not None and after != self.before
        return self.changed

    def _write(self, now: bool = False) -> None:
        if self.held and self._has_changed(now):
            with self.path.open("a", encoding="utf-8") as f:
                f.write("\n".join(self.held) + "\n")
            self.held = []

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._write(now=True)
        super().close()


@contextlib.contextmanager
def setup(
    own_level: int, verbose: int = 0, folder: str | Path | None = None, command: str = "lion"
) -> Iterator[Path | None]:
    """The command line's logging for one run; handlers and warning capture undone afterwards.

    Args:
        own_level: Console level of the run's own records (WARNING; -v INFO; -q ERROR).
        verbose: ``-v`` count; from 2 on, other libraries' records are shown too.
        folder: The run's output folder for ``lion.log`` (None: no log file).
        command: The command line, written as the header of this run's part of the log.

    Yields:
        The log file's path (it exists once the folder does), or None.
    """
    root = logging.getLogger()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(FORMAT))
    other_level = logging.DEBUG if verbose >= 2 else logging.ERROR
    console.addFilter(_ConsoleFilter(own_level, other_level))
    handlers: list[logging.Handler] = [console]
    if folder is not None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        handlers.append(FolderLogHandler(folder, f"=== {stamp} {command}"))
    old_level = root.level
    root.setLevel(min(own_level, other_level, logging.INFO if folder is not None else own_level))
    for handler in handlers:
        root.addHandler(handler)
    logging.captureWarnings(True)  # warnings.warn -> logger "py.warnings"
    try:
        yield None if folder is None else Path(folder) / LOG_FILE
    finally:
        logging.captureWarnings(False)
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(old_level)
