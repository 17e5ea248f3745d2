"""The decoded-pixel budget of one API process (``MAX_PROCESS_PIXELS``).

An upload of a few hundred KiB can decode to gigabytes (a 12600x12600 PNG of one colour is
176 KiB and 476 MB as RGB), so memory is bounded by what is decoded, not by what is sent. Every
decode reserves the image's pixel count (from its header, before decoding) for as long as the
decoded image lives; concurrent requests share the budget. A reservation that does not fit
waits up to ``RETRY_AFTER_S`` for others to finish, then fails with
:class:`PixelBudgetExhausted` (503 with ``Retry-After``: the budget frees up as requests end).
An image larger than the whole budget is refused before this (413, see ``uploads.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["PixelBudget", "PixelBudgetExhausted"]


class PixelBudgetExhausted(Exception):
    """Decoding would pass ``MAX_PROCESS_PIXELS`` now; retrying later can succeed."""


class PixelBudget:
    """Pixels decoded at once in this process.

    Args:
        limit: ``MAX_PROCESS_PIXELS``.
        wait_s: how long a reservation waits for room before giving up.
    """

    def __init__(self, limit: int, wait_s: float) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self.in_use = 0
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def reserve(self, pixels: int) -> AsyncIterator[None]:
        """Hold ``pixels`` of the budget for the body of the ``async with``.

        Raises:
            ValueError: ``pixels`` is more than the whole budget (could never fit).
            PixelBudgetExhausted: no room within ``wait_s``.
        """
        if pixels > self.limit:
            raise ValueError(f"{pixels} pixels can never fit MAX_PROCESS_PIXELS={self.limit}")
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.in_use + pixels <= self.limit),
                    timeout=self.wait_s)
            except TimeoutError:
                raise PixelBudgetExhausted(
                    f"other requests are decoding {self.in_use} of MAX_PROCESS_PIXELS="
                    f"{self.limit} pixels") from None
            self.in_use += pixels
        try:
            yield
        finally:
            async with self._changed:
                self.in_use -= pixels
                self._changed.notify_all()
