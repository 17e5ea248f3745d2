"""Uploaded images: checked against the limits from their headers, decoded one at a time.

:func:`read_uploads` reads the bytes and image headers of a request's files and refuses the
request before anything is decoded or queued: too many files (413), a file too large (413), a
content type that is not an image (415), an empty file or one that is not a JPEG/PNG (422), an
image larger than ``MAX_PROCESS_PIXELS`` (413) or images over ``MAX_REQUEST_PIXELS`` together
(413). An :class:`Upload` keeps only the bytes; :func:`use_decoded` decodes one under the
process's :class:`~tigertrap.classify.api.pixel_budget.PixelBudget`, hands the image to a
function (make a model input, cut crops, detect) and drops it, so a request never holds more
than one decoded image. Every refusal is an :class:`UploadRejected` naming the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TypeVar

from fastapi import UploadFile
from PIL import Image
from starlette.concurrency import run_in_threadpool

from tigertrap.classify.api.config import ApiSettings
from tigertrap.classify.api.pixel_budget import PixelBudget
from tigertrap.core.images import ImageLoadError, image_size, open_image

__all__ = [
    "ACCEPTED_CONTENT_TYPES",
    "Upload",
    "UploadRejected",
    "check_decodable",
    "read_uploads",
    "safe_name",
    "use_decoded",
]

#: Part content types taken as images; the bytes must then really be JPEG or PNG.
ACCEPTED_CONTENT_TYPES = frozenset({"image/jpeg", "image/jpg", "image/pjpeg", "image/png",
                                    "application/octet-stream", ""})
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
READ_CHUNK = 1 << 20
UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
#: The smallest decode that still reads every byte: a JPEG at 1/8 scale (a PNG in full).
CHECK_DRAFT_SIZE = (1, 1)

T = TypeVar("T")


class UploadRejected(Exception):
    """An upload the API refuses; ``status_code`` and a message naming the file."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass
class Upload:
    """One uploaded image, not decoded: its name as sent, its bytes and its upright size."""

    name: str
    data: bytes
    width: int
    height: int

    @property
    def pixels(self) -> int:
        """Pixels the image decodes to at full size."""
        return self.width * self.height


def safe_name(name: str, index: int) -> str:
    """A file name to store an upload under: the base name, plain characters, numbered."""
    base = UNSAFE_CHARACTERS.sub("_", PurePath(name.replace("\\", "/")).name).strip("._")
    return f"{index:03d}-{base or 'image'}"


async def _read_limited(upload: UploadFile, name: str, limit: int) -> bytes:
    if upload.size is not None and upload.size > limit:
        raise UploadRejected(413, f"file {name!r} is {upload.size} bytes; the limit is {limit} "
                                  "bytes per image (MAX_UPLOAD_BYTES)")
    chunks, total = [], 0
    while chunk := await upload.read(READ_CHUNK):
        total += len(chunk)
        if total > limit:
            raise UploadRejected(413, f"file {name!r} is larger than the limit of {limit} "
                                      "bytes per image (MAX_UPLOAD_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_image(name: str, data: bytes) -> tuple[int, int]:
    if not data:
        raise UploadRejected(422, f"file {name!r} is empty (0 bytes)")
    if not data.startswith((JPEG_MAGIC, PNG_MAGIC)):
        raise UploadRejected(422, f"file {name!r} is not a JPEG or PNG image")
    try:
        return image_size(data)
    except ImageLoadError as error:
        raise UploadRejected(422, f"file {name!r} cannot be used: {error.reason}") from error


async def read_upload(upload: UploadFile, max_bytes: int) -> Upload:
    """Read one upload and its image header (nothing decoded). Raises :class:`UploadRejected`."""
    name = upload.filename or "<unnamed>"
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    if content_type not in ACCEPTED_CONTENT_TYPES:
        raise UploadRejected(415, f"file {name!r} was sent as {content_type!r}; send JPEG or "
                                  "PNG images (image/jpeg, image/png)")
    data = await _read_limited(upload, name, max_bytes)
    width, height = await run_in_threadpool(_check_image, name, data)
    return Upload(name=name, data=data, width=width, height=height)


def _check_pixels(uploads: Sequence[Upload], settings: ApiSettings) -> None:
    for upload in uploads:
        if upload.pixels > settings.max_process_pixels:
            raise UploadRejected(413, f"file {upload.name!r} is {upload.width}x{upload.height} "
                                      f"= {upload.pixels} pixels; the server decodes at most "
                                      f"MAX_PROCESS_PIXELS={settings.max_process_pixels} at "
                                      "once: send a smaller image")
    total = sum(upload.pixels for upload in uploads)
    if total > settings.max_request_pixels:
        raise UploadRejected(413, f"the images of this request have {total} pixels together; "
                                  f"the limit is MAX_REQUEST_PIXELS={settings.max_request_pixels}"
                                  " per request: send fewer or smaller images")


async def read_uploads(uploads: list[UploadFile], settings: ApiSettings) -> list[Upload]:
    """Read every upload and check it and the request against ``settings``' limits, refusing
    the request at the first problem (:class:`UploadRejected`); nothing is decoded."""
    if not uploads:
        raise UploadRejected(422, "no images: attach one or more files in the field 'images'")
    if len(uploads) > settings.max_images:
        raise UploadRejected(413, f"{len(uploads)} images sent; the limit is "
                                  f"{settings.max_images} per request (MAX_IMAGES)")
    read = [await read_upload(upload, settings.max_upload_bytes) for upload in uploads]
    _check_pixels(read, settings)
    return read


def _decode_and_use(upload: Upload, use: Callable[[Image.Image], T],
                    draft_size: tuple[int, int] | None) -> T:
    try:
        image = open_image(upload.data, draft_size=draft_size)
    except ImageLoadError as error:
        raise UploadRejected(422, f"file {upload.name!r} cannot be used: {error.reason}"
                             ) from error
    try:
        return use(image)
    finally:
        image.close()


async def use_decoded(upload: Upload, budget: PixelBudget, use: Callable[[Image.Image], T],
                      draft_size: tuple[int, int] | None = None) -> T:
    """Decode ``upload`` as upright RGB within ``budget``, return ``use(image)`` (run in a
    worker thread) and drop the image.

    ``draft_size``: a JPEG may be decoded at a reduced scale that stays at least this large
    (see :func:`tigertrap.core.images.open_image`); for crops that are only resized.

    Raises:
        UploadRejected: 422, the image does not decode (truncated, corrupt).
        PixelBudgetExhausted: the process's budget stayed full.
    """
    async with budget.reserve(upload.pixels):
        return await run_in_threadpool(_decode_and_use, upload, use, draft_size)


def _decodes(image: Image.Image) -> None:
    return None


async def check_decodable(uploads: Sequence[Upload], budget: PixelBudget) -> None:
    """Decode each upload once (a JPEG at 1/8 scale) to refuse a corrupt one with 422 before
    it is sent on (full frames go to the detector as files)."""
    for upload in uploads:
        await use_decoded(upload, budget, _decodes, draft_size=CHECK_DRAFT_SIZE)
