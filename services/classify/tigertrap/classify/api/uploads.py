"""Uploaded images: checked against the limits and decoded before any work is queued.

Every refusal is an :class:`UploadRejected` carrying the HTTP status and a sentence that names
the file: too many files (413), a file too large (413), a content type that is not an image
(415), an empty file or one that is not a readable JPEG/PNG (422).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from fastapi import UploadFile
from PIL import Image
from starlette.concurrency import run_in_threadpool

from tigertrap.core.images import ImageLoadError, image_size, open_image

__all__ = ["ACCEPTED_CONTENT_TYPES", "Upload", "UploadRejected", "read_uploads", "safe_name"]

#: Part content types taken as images; the bytes must then really be JPEG or PNG.
ACCEPTED_CONTENT_TYPES = frozenset({"image/jpeg", "image/jpg", "image/pjpeg", "image/png",
                                    "application/octet-stream", ""})
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
READ_CHUNK = 1 << 20
UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


class UploadRejected(Exception):
    """An upload the API refuses; ``status_code`` and a message naming the file."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass
class Upload:
    """One uploaded image: its name as sent, its bytes, the decoded upright RGB image (maybe
    at a reduced scale) and its full upright size."""

    name: str
    data: bytes
    image: Image.Image
    width: int
    height: int


def safe_name(name: str, index: int) -> str:
    """A file name to store an upload under: the base name, plain characters, numbered."""
    base = UNSAFE_CHARACTERS.sub("_", PurePath(name.replace("\\", "/")).name).strip("._")
    return f"{index:03d}-{base or 'image'}"


async def _read_limited(upload: UploadFile, name: str, limit: int) -> bytes:
    if upload.size is not None and upload.size > limit:
        raise UploadRejected(413, f"file {name!r} is {upload.size} bytes; the limit is {limit} "
                                  "bytes per image")
    chunks, total = [], 0
    while chunk := await upload.read(READ_CHUNK):
        total += len(chunk)
        if total > limit:
            raise UploadRejected(413, f"file {name!r} is larger than the limit of {limit} "
                                      "bytes per image")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(name: str, data: bytes,
            draft_size: tuple[int, int] | None) -> tuple[Image.Image, tuple[int, int]]:
    if not data:
        raise UploadRejected(422, f"file {name!r} is empty (0 bytes)")
    if not data.startswith((JPEG_MAGIC, PNG_MAGIC)):
        raise UploadRejected(422, f"file {name!r} is not a JPEG or PNG image")
    try:
        image = open_image(data, draft_size=draft_size)
        return image, (image.size if draft_size is None else image_size(data))
    except ImageLoadError as error:
        raise UploadRejected(422, f"file {name!r} cannot be used: {error.reason}") from error


async def read_upload(upload: UploadFile, max_bytes: int,
                      draft_size: tuple[int, int] | None = None) -> Upload:
    """Read and decode one upload. Raises :class:`UploadRejected`.

    ``draft_size``: a JPEG may be decoded at a reduced scale that stays at least this large
    (see :func:`tigertrap.core.images.open_image`); for crops that are only resized.
    """
    name = upload.filename or "<unnamed>"
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    if content_type not in ACCEPTED_CONTENT_TYPES:
        raise UploadRejected(415, f"file {name!r} was sent as {content_type!r}; send JPEG or "
                                  "PNG images (image/jpeg, image/png)")
    data = await _read_limited(upload, name, max_bytes)
    image, (width, height) = await run_in_threadpool(_decode, name, data, draft_size)
    return Upload(name=name, data=data, image=image, width=width, height=height)


async def read_uploads(uploads: list[UploadFile], *, max_images: int, max_bytes: int,
                       draft_size: tuple[int, int] | None = None) -> list[Upload]:
    """Read and decode every upload, refusing the request at the first bad one."""
    if not uploads:
        raise UploadRejected(422, "no images: attach one or more files in the field 'images'")
    if len(uploads) > max_images:
        raise UploadRejected(413, f"{len(uploads)} images sent; the limit is {max_images} per "
                                  "request")
    return [await read_upload(upload, max_bytes, draft_size) for upload in uploads]
