"""A headless Chromium driven over the DevTools protocol (CDP) on a websocket.

Just enough for the web page test: open a URL, hand files to an ``<input type=file>``, run
JavaScript (awaiting promises) and take a PNG screenshot. Chromium picks a free debugging port
and writes it to ``DevToolsActivePort`` in its profile folder.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

__all__ = ["CHROMIUM", "HeadlessChromium", "chromium_binary"]

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-default-apps", "--hide-scrollbars", "--window-size=1280,1000",
         "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1")
START_TIMEOUT_S = 60
CALL_TIMEOUT_S = 120
POLL_S = 0.1


def chromium_binary() -> str | None:
    """The first Chromium found on PATH."""
    return next((path for name in CHROMIUM if (path := shutil.which(name))), None)


class HeadlessChromium:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, binary: str, profile: Path) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}",
                                         "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = self._debugging_port(profile / "DevToolsActivePort")
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(p for p in pages if p["type"] == "page")
        self.socket: ClientConnection = connect(page["webSocketDebuggerUrl"], max_size=None,
                                                open_timeout=10)
        self._next_id = 0

    def _debugging_port(self, port_file: Path) -> int:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with code {self.process.returncode}")
            if port_file.is_file() and port_file.read_text().strip():
                return int(port_file.read_text().splitlines()[0])
            time.sleep(POLL_S)
        raise TimeoutError("chromium did not open its debugging port")

    def __enter__(self) -> HeadlessChromium:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _receive(self) -> dict[str, Any]:
        return json.loads(self.socket.recv(timeout=CALL_TIMEOUT_S))

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a CDP command and return its result (events arriving meanwhile are dropped)."""
        self._next_id += 1
        self.socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def open(self, url: str) -> None:
        """Navigate and wait for the page's load event."""
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        while self._receive().get("method") != "Page.loadEventFired":
            pass

    def evaluate(self, expression: str) -> Any:
        """Run JavaScript in the page; a promise is awaited. Returns the value."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def set_files(self, selector: str, files: list[Path]) -> None:
        """Choose ``files`` in the file input matching ``selector``, as a person would."""
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.call("DOM.setFileInputFiles", nodeId=node, files=[str(f) for f in files])

    def screenshot(self) -> bytes:
        """A PNG of the whole page."""
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(data["data"])
