"""A real HTTP server on 127.0.0.1 that receives webhook POSTs and answers as told.

``statuses`` lists the answers to the next calls (then 200); every call's headers and JSON body
are kept in ``calls``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status = self.server.owner.record(dict(self.headers), json.loads(body or b"null"))
        answer = b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


class _Server(ThreadingHTTPServer):
    owner: WebhookServer
    daemon_threads = True


class WebhookServer:
    """``with WebhookServer(statuses=[503]) as hook: ... hook.url ... hook.calls``."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.calls: list[tuple[dict[str, str], Any]] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def record(self, headers: dict[str, str], body: Any) -> int:
        with self._lock:
            self.calls.append((headers, body))
            return self.statuses.pop(0) if self.statuses else 200

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
