"""What a ``tigertrap`` command shows on the terminal besides its result: errors and progress.

Every stage's command reports the same way:

- :func:`fail` prints ``error: <message>`` in red on stderr and returns the ``typer.Exit`` to
  raise: exit code 2 means "fix the input or the configuration" (1 is left to commands whose
  run finished with failures to look at);
- :class:`ProgressBar` is a stage's ``progress(done, total)`` callable drawn with tqdm on stderr
  (count, rate, ETA), so stdout keeps only the command's result.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

import typer

__all__ = ["EXIT_BAD_INPUT", "REFRESH_SECONDS", "ProgressBar", "fail"]

#: Exit code of a command stopped by input or configuration the user must fix.
EXIT_BAD_INPUT = 2
#: Seconds between redraws when stderr is not a terminal: a batch of 100 000 images must not
#: flood a log file.
REFRESH_SECONDS = 5.0
#: Seconds between redraws on a terminal (tqdm's default).
TERMINAL_REFRESH_SECONDS = 0.1


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print ``error: message`` on stderr; the exit to raise (``raise fail(...) from None``)."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


class ProgressBar:
    """``progress(done, total)`` drawn on stderr; use as a context manager (or :meth:`close`).

    The bar is created at the first report. A report of ``(0, 0)`` is a heartbeat (a stage
    alive but with nothing counted yet, e.g. while it scans metadata) and draws nothing. A
    report with another total starts a new bar: a stage with phases (scan, then fetch) shows
    each one. A total of 0 with work done draws a counter without an end.
    """

    def __init__(self, label: str, unit: str = "img") -> None:
        self.label = label
        self.unit = unit
        self._bar: Any = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if not total and not done:
            return
        if self._bar is not None and (total or None) != self._bar.total:
            self.close()
        if self._bar is None:
            refresh = TERMINAL_REFRESH_SECONDS if sys.stderr.isatty() else REFRESH_SECONDS
            self._bar = tqdm(total=total or None, initial=done, desc=self.label, unit=self.unit,
                             mininterval=refresh, dynamic_ncols=True, file=sys.stderr)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        """Finish the current bar (its last state stays on the terminal)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
