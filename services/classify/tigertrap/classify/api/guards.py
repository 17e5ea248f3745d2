"""Guards in front of the routes: the API key, the request size cap and body read timeouts.

:class:`RequestGuard` is a pure ASGI middleware, so it runs before FastAPI reads or parses a
byte of the body:

- a ``/v1`` request without the right key (``TIGERTRAP_API_KEY``) is answered 401 at once; its
  body is never received;
- a ``Content-Length`` over ``MAX_REQUEST_BYTES`` is answered 413 at once; a body that passes
  the cap while it streams in (chunked) is cut there with a 413. A body that is not
  multipart (a job request: JSON read whole into memory) is capped at
  :data:`MAX_OTHER_BODY_BYTES`;
- a body that pauses longer than ``BODY_IDLE_TIMEOUT_S`` or is not complete within
  ``BODY_TIMEOUT_S`` of the request head is answered 408.

Any response sent before the request body was read to its end carries ``Connection: close``:
the server stops reading and closes instead of receiving the rest. (Slow request heads are the
protocol's business: :mod:`tigertrap.classify.api.server`.)
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tigertrap.classify.api.config import ApiSettings

__all__ = [
    "API_KEY_HEADER",
    "MAX_OTHER_BODY_BYTES",
    "MISSING_KEY_MESSAGE",
    "SECURED_PREFIX",
    "RequestGuard",
    "RequestRefused",
    "key_accepted",
]

API_KEY_HEADER = "X-API-Key"
#: Routes under this prefix need the API key when one is configured.
SECURED_PREFIX = "/v1"
MISSING_KEY_MESSAGE = (f"missing or wrong API key: send it in the {API_KEY_HEADER} header or "
                       "as 'Authorization: Bearer <key>'")
CLOSE = (b"connection", b"close")
#: Largest body that is not multipart/form-data (job requests are a few hundred bytes).
MAX_OTHER_BODY_BYTES = 1024 * 1024
MULTIPART = "multipart/form-data"


def key_accepted(expected: str | None, api_key: str | None, authorization: str | None) -> bool:
    """Whether a request presenting ``api_key`` (the X-API-Key header) or ``authorization``
    (``Bearer <key>``) may use the secured routes; always True when no key is configured."""
    if not expected:
        return True
    given = api_key
    if not given and authorization:
        scheme, _, credentials = authorization.partition(" ")
        given = credentials.strip() if scheme.lower() == "bearer" else None
    return bool(given) and secrets.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class Refusal:
    """A response the guard sends instead of the route's."""

    status_code: int
    detail: str
    headers: Mapping[str, str] = field(default_factory=dict)


class RequestRefused(HTTPException):
    """Raised into the route from ``receive`` when the body breaks a limit; the guard answers."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.status_code, refusal.detail, dict(refusal.headers))
        self.refusal = refusal


class RequestGuard:
    """The ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await _GuardedRequest(self.settings, scope, receive, send).run(self.app)


class _GuardedRequest:
    """One request's pass through the guard: its byte count, deadlines and response state."""

    def __init__(self, settings: ApiSettings, scope: Scope, receive: Receive, send: Send) -> None:
        self.settings = settings
        self.scope = scope
        self.headers = Headers(scope=scope)
        self._receive = receive
        self._send = send
        self.multipart = self.headers.get("content-type", "").lower().startswith(MULTIPART)
        self.limit = settings.request_byte_limit()
        if not self.multipart:
            self.limit = min(self.limit, MAX_OTHER_BODY_BYTES)
        self.deadline = time.monotonic() + settings.body_timeout_s
        self.received = 0
        self.body_done = not self._has_body()
        self.refusal: Refusal | None = None
        self.response_started = False
        self.replaced = False

    def _has_body(self) -> bool:
        return "transfer-encoding" in self.headers or self._content_length() not in (None, 0)

    def _content_length(self) -> int | None:
        try:
            return int(self.headers["content-length"])
        except (KeyError, ValueError):
            return None

    def _secured(self) -> bool:
        path = self.scope["path"].removeprefix(self.scope.get("root_path", "") or "")
        return path == SECURED_PREFIX or path.startswith(SECURED_PREFIX + "/")

    def _early_refusal(self) -> Refusal | None:
        if self._secured() and not key_accepted(self.settings.tigertrap_api_key,
                                                self.headers.get("x-api-key"),
                                                self.headers.get("authorization")):
            return Refusal(401, MISSING_KEY_MESSAGE, {"WWW-Authenticate": "Bearer"})
        length = self._content_length()
        if length is not None and length > self.limit:
            return self._too_large(f"the request body is {length} bytes")
        return None

    def _too_large(self, what: str) -> Refusal:
        if not self.multipart:
            return Refusal(413, f"{what}; a body that is not {MULTIPART} (a job request) may "
                                f"have at most {self.limit} bytes")
        return Refusal(413, f"{what}; the limit is MAX_REQUEST_BYTES={self.limit} bytes per "
                            f"request: send fewer or smaller images (each at most "
                            f"MAX_UPLOAD_BYTES={self.settings.max_upload_bytes} bytes)")

    async def run(self, app: ASGIApp) -> None:
        early = self._early_refusal()
        if early is not None:
            await self._answer(early)
            return
        try:
            await app(self.scope, self.receive, self.send)
        except Exception:
            if self.refusal is None:
                raise
            if not self.response_started:  # the route let the refusal through unanswered
                await self._answer(self.refusal)

    def _refuse(self, refusal: Refusal) -> RequestRefused:
        self.refusal = refusal
        return RequestRefused(refusal)

    async def receive(self) -> Message:
        """The server's ``receive``, counting body bytes against the cap and the deadlines."""
        if self.body_done or self.refusal is not None:
            return await self._receive()
        remaining = self.deadline - time.monotonic()
        idle = self.settings.body_idle_timeout_s
        try:
            message = await asyncio.wait_for(self._receive(), timeout=min(idle, remaining))
        except TimeoutError:
            if remaining <= idle:
                raise self._refuse(Refusal(
                    408, f"the request body did not arrive within BODY_TIMEOUT_S="
                         f"{self.settings.body_timeout_s:g} s; send it faster or send fewer "
                         "images per request")) from None
            raise self._refuse(Refusal(
                408, f"no part of the request body arrived for BODY_IDLE_TIMEOUT_S="
                     f"{idle:g} s")) from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                raise self._refuse(self._too_large(
                    f"the request body passed {self.limit} bytes"))
            self.body_done = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        """The route's ``send``; the guard's refusal replaces its response, and a response sent
        before the body was read to its end closes the connection."""
        if self.replaced:
            return
        if message["type"] == "http.response.start" and not self.response_started:
            if self.refusal is not None:
                self.replaced = True
                await self._answer(self.refusal)
                return
            self.response_started = True
            if not self.body_done:
                message = {**message, "headers": [*message.get("headers", []), CLOSE]}
        await self._send(message)

    async def _answer(self, refusal: Refusal) -> None:
        self.response_started = True
        headers = dict(refusal.headers)
        if not self.body_done:
            headers["Connection"] = "close"
        response = JSONResponse({"detail": refusal.detail}, status_code=refusal.status_code,
                                headers=headers)
        await response(self.scope, self._receive, self._send)
