"""A headless Chromium driven over the DevTools protocol (CDP) on a websocket.

Just enough for the web page tests: open a URL, hand files to an ``<input type=file>``, click
elements and press keys as a person would (the Input domain's real mouse and key events), type
text, run JavaScript (awaiting promises) and take a PNG screenshot. Chromium picks a free
debugging port and writes it to ``DevToolsActivePort`` in its profile folder.
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
#: Windows virtual key codes of the named keys :meth:`HeadlessChromium.press` knows.
NAMED_KEYS = {"ArrowLeft": 37, "ArrowRight": 39, "Tab": 9, "Enter": 13, "Backspace": 8}


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

    def click(self, selector: str) -> None:
        """Press and release the left mouse button on the centre of the element."""
        box = self.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                            ".getBoundingClientRect(); return [r.x + r.width / 2, "
                            "r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1],
                      button="left", clickCount=1)

    def press(self, key: str) -> None:
        """Press and release one key: a character ("1", "z") or a named key ("ArrowRight",
        "Tab")."""
        code = NAMED_KEYS.get(key)
        if code is None:
            down = {"key": key, "text": key, "windowsVirtualKeyCode": ord(key.upper())}
        else:
            down = {"key": key, "code": key, "windowsVirtualKeyCode": code}
        self.call("Input.dispatchKeyEvent", type="keyDown", **down)
        self.call("Input.dispatchKeyEvent", type="keyUp", key=key,
                  windowsVirtualKeyCode=down["windowsVirtualKeyCode"])

    def type_text(self, text: str) -> None:
        """Type ``text`` into the focused element."""
        self.call("Input.insertText", text=text)

    def screenshot(self) -> bytes:
        """A PNG of the whole page."""
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(data["data"])
