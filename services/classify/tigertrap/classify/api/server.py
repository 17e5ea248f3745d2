"""How ``tigertrap serve`` runs the API: uvicorn, bounded against many and slow clients.

uvicorn has no timeout for a request head that arrives byte by byte (its keep-alive timer
stops at the first byte), so :class:`GuardedH11Protocol`, uvicorn's h11 protocol, closes a
connection whose request head is not complete within ``HEADER_TIMEOUT_S`` of the connection
opening or of the previous response. Body timeouts, the body cap and the API key are checked in
the ASGI layer (:mod:`tigertrap.classify.api.guards`). :func:`serve_api` also caps open
connections (``MAX_CONNECTIONS``, uvicorn's ``limit_concurrency``: beyond it a request gets 503)
and the size of a request head (:data:`MAX_HEAD_BYTES`; h11 answers 400 beyond it).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from tigertrap.classify.api.config import ApiSettings
from tigertrap.core.config import load_settings

__all__ = ["APP_FACTORY", "MAX_HEAD_BYTES", "PROTOCOL", "GuardedH11Protocol", "serve_api"]

log = logging.getLogger(__name__)

#: The app factory uvicorn imports in each worker process (settings come from the environment).
APP_FACTORY = "tigertrap.classify.api.app:create_app"
#: The protocol by import path, so that every worker process (spawned) imports the same class.
PROTOCOL = "tigertrap.classify.api.server:GuardedH11Protocol"
#: Largest request line plus headers (h11's own default, stated here because it bounds memory).
MAX_HEAD_BYTES = 16 * 1024


@functools.cache
def _header_timeout_s() -> float:
    # Worker processes start from the environment ``tigertrap serve`` has checked and exported.
    return load_settings(ApiSettings).header_timeout_s


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head arrives too slowly."""

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout_s = _header_timeout_s()
        self._head_timer: asyncio.TimerHandle | None = None

    def _await_head(self) -> None:
        self._head_arrived()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _head_arrived(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            log.info("closing a connection from %s: no complete request head within %g s",
                     self.client, self.header_timeout_s)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request head was parsed: its cycle has started
            self._head_arrived()

    def on_response_complete(self) -> None:
        # Armed before the base class runs, which may start a pipelined request at once.
        if not self.transport.is_closing():
            self._await_head()
        super().on_response_complete()


def serve_api(settings: ApiSettings, *, host: str, port: int, workers: int,
              log_level: str) -> None:
    """Run the API with uvicorn until stopped (``settings`` as checked from the environment)."""
    import uvicorn

    uvicorn.run(APP_FACTORY, factory=True, host=host, port=port, workers=workers,
                log_level=log_level, http=PROTOCOL,
                limit_concurrency=settings.max_connections,
                h11_max_incomplete_event_size=MAX_HEAD_BYTES)
