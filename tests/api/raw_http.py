"""HTTP/1.1 by hand over loopback sockets, for requests no well-behaved client sends: bodies
that never end, heads sent byte by byte, and proof that the server answered or closed before
the client finished sending. Also images built byte by byte (decompression bombs)."""

from __future__ import annotations

import json
import select
import socket
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

#: Zero bytes compressed per call when a bomb is built (bounds the test's own memory).
BOMB_CHUNK = 1 << 24
BOUNDARY = "hostile-boundary"


@dataclass
class RawResponse:
    """A response read off a socket."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


def connect(port: int) -> socket.socket:
    """A loopback connection to the server on ``port``."""
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    """A request line and headers, ready to send."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in
                                                               headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def readable(sock: socket.socket) -> bool:
    """Whether the server has sent something (or closed) on ``sock``."""
    return bool(select.select([sock], [], [], 0)[0])


def read_response(sock: socket.socket, timeout_s: float = 30) -> RawResponse:
    """The next response on ``sock`` (the body by its Content-Length)."""
    sock.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {data!r}")
        data += chunk
    raw_head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return RawResponse(int(status_line.split()[1]), headers, body)


def closed_by_server(sock: socket.socket, timeout_s: float = 10) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    sock.setblocking(False)
    while time.monotonic() < deadline:
        if select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
            try:
                if not sock.recv(65536):
                    return True
            except (ConnectionResetError, BrokenPipeError):
                return True
            except BlockingIOError:
                continue
    return False


def chunk(data: bytes) -> bytes:
    """One chunk of a ``Transfer-Encoding: chunked`` body."""
    return b"%x\r\n" % len(data) + data + b"\r\n"


def part_head(filename: str | bytes, content_type: str = "image/png",
              field_name: str = "images") -> bytes:
    """The boundary and headers of one multipart file part."""
    name = filename.encode() if isinstance(filename, str) else filename
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field_name}\"; "
            f"filename=\"").encode() + name + f"\"\r\nContent-Type: {content_type}\r\n\r\n".encode()


def multipart(parts: list[tuple[str | bytes, bytes]], content_type: str = "image/png") -> bytes:
    """A whole multipart body of file parts ``(filename, data)`` in the field ``images``."""
    body = b"".join(part_head(name, content_type) + data + b"\r\n" for name, data in parts)
    return body + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def solid_png(width: int, height: int, colour: tuple[int, ...] = (0,)) -> bytes:
    """A PNG of one colour (grey for one value, RGB for three), compressed row by row so that
    even a bomb of billions of pixels is built in little memory."""
    colour_type = 0 if len(colour) == 1 else 2
    row = b"\0" + bytes(colour) * width
    compressor = zlib.compressobj(9)
    rows_per_call = max(1, BOMB_CHUNK // len(row))
    idat = []
    for start in range(0, height, rows_per_call):
        idat.append(compressor.compress(row * min(rows_per_call, height - start)))
    idat.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", b"".join(idat)) + _png_chunk(b"IEND", b""))


def jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its frame header (SOF0) rewritten to claim ``width`` x ``height``."""
    at = jpeg.index(b"\xff\xc0")
    return jpeg[:at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9:]
