"""A terminal progress bar usable as the stage's ``progress(done, total)`` callable."""

from __future__ import annotations

from types import TracebackType

__all__ = ["ProgressBar"]

#: Seconds between redraws; a batch of 100 000 images must not flood a log file.
REFRESH_SECONDS = 5.0


class ProgressBar:
    """``progress(done, total)`` drawn with tqdm on stderr (silent when stderr is no terminal)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._bar: object | None = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.close()  # type: ignore[attr-defined]

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=total, initial=done, desc=self.label, unit="img",
                             mininterval=REFRESH_SECONDS, disable=None)
        bar = self._bar
        bar.total = total  # type: ignore[attr-defined]
        bar.update(done - bar.n)  # type: ignore[attr-defined]
