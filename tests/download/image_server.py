"""A real HTTP server on 127.0.0.1 that serves the fixture images and misbehaves on request.

Paths (``<name>`` is a file name under the served folder):

- ``/img/<name>``        the image
- ``/flaky/<name>``      HTTP 500 the first time, then the image
- ``/slow/<name>``       answers only once :attr:`ImageServer.release` is set
- ``/truncated/<name>``  declares the full length, sends half, closes the connection
- ``/html/<name>``       HTTP 200 with an HTML error page
- ``/missing/<name>``    HTTP 404
- ``/gated/<name>``      the image for the first :attr:`gate_after` gated requests; later ones
  wait for :attr:`gate` and, when :attr:`abandon` is set, close without an answer

It counts requests and fully served bodies per path; :meth:`wait_for_requests` blocks on a
condition (no polling) until enough requests have arrived.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

HTML_PAGE = b"<html><body><h1>Service unavailable</h1></body></html>"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "image/jpeg",
              *, send_bytes: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if send_bytes is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body[:send_bytes] if send_bytes is not None else body)
        self.wfile.flush()

    def do_GET(self) -> None:
        owner = self.server.owner
        mode, _, name = self.path.lstrip("/").partition("/")
        request_number, gated_number = owner.count_request(self.path)
        image = owner.folder / name
        if mode == "missing" or not image.is_file():
            self._send(404, b"not found", "text/plain")
            return
        body = image.read_bytes()
        if mode == "flaky" and request_number == 1:
            self._send(500, b"internal error", "text/plain")
            return
        if mode == "slow":
            owner.release.wait()
        # The gated position is taken on arrival, so concurrent requests cannot overtake it.
        if mode == "gated" and owner.gate_after is not None and gated_number > owner.gate_after:
            owner.gate.wait()
            if owner.abandon:
                self.close_connection = True
                return
        if mode == "truncated":
            self._send(200, body, send_bytes=len(body) // 2)
            return
        if mode == "html":
            self._send(200, HTML_PAGE, "text/html")
            return
        self._send(200, body)
        owner.count_served(self.path)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: ImageServer


class ImageServer:
    """Start with ``with ImageServer(folder) as server:``; URLs from :meth:`url`."""

    def __init__(self, folder: Path, *, gate_after: int | None = None) -> None:
        self.folder = Path(folder)
        self.gate_after = gate_after
        self.gate = threading.Event()
        self.release = threading.Event()
        self.abandon = False
        self.requests: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self.arrivals: list[float] = []
        self._gated_arrivals = 0
        self._changed = threading.Condition()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, mode: str, name: str) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{mode}/{name}"

    def count_request(self, path: str) -> tuple[int, int]:
        """This path's request number and, for gated paths, the arrival order among them."""
        with self._changed:
            self.requests[path] += 1
            self.arrivals.append(time.monotonic())
            if path.startswith("/gated/"):
                self._gated_arrivals += 1
            self._changed.notify_all()
            return self.requests[path], self._gated_arrivals

    def count_served(self, path: str) -> None:
        with self._changed:
            self.served[path] += 1

    def wait_for_requests(self, total: int, timeout: float) -> bool:
        """Block until ``total`` requests have arrived; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: sum(self.requests.values()) >= total,
                                          timeout=timeout)

    def open_gate(self, *, abandon: bool) -> None:
        """Let waiting gated requests go: answered, or (``abandon``) dropped unanswered."""
        self.abandon = abandon
        self.gate.set()

    def __enter__(self) -> ImageServer:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release.set()
        self.open_gate(abandon=True)
        self._httpd.shutdown()
        self._httpd.server_close()
