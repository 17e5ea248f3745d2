"""Concurrent, resumable image downloads over flaky connections.

:func:`fetch_images` downloads many images with up to ``concurrency`` connections (httpx, one
event loop). For each image it tries the mirrors in order (LILA: ``url_gcp``, ``url_aws``,
``url_azure``); on a server error, a timeout, a dropped or truncated body it retries the same
mirror with exponential backoff, on a 4xx or a body that does not decode as an image (an HTML
error page saved as .jpg) it moves to the next mirror. A body is written only once it decodes,
to a temporary name renamed into place (so a file that exists is complete). A target that
already exists and matches the recorded size (or sha256) is not fetched again. One bad URL never
stops the batch: its failure is returned with the reasons from each mirror.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from tigertrap.core.images import ImageLoadError, open_image
from tigertrap.core.paths import atomic_write_bytes

__all__ = [
    "FetchJob",
    "FetchOptions",
    "FetchResult",
    "fetch_images",
    "verify_image_bytes",
]

#: Decoding at 1/8 scale still reads the whole JPEG stream, so truncation is caught cheaply.
VERIFY_DRAFT_SIZE = (64, 64)
#: Status codes worth retrying on the same mirror; other 4xx go to the next mirror at once.
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = "tigertrap-download/0.1 (+https://lila.science)"


@dataclass(frozen=True)
class FetchOptions:
    """How to download. ``rate_limit`` is requests per second over all connections (0: none)."""

    concurrency: int = 16
    retries: int = 3
    backoff_s: float = 1.0
    timeout_s: float = 30.0
    rate_limit: float = 0.0
    verify: Literal["size", "hash"] = "size"


@dataclass(frozen=True)
class FetchJob:
    """One image: where it goes, where it can come from, and what a complete copy looks like."""

    target: Path
    urls: Sequence[str]
    expected_bytes: int | None = None
    expected_sha256: str | None = None


@dataclass
class FetchResult:
    """``status`` is ``ok`` (downloaded), ``existing`` (already complete on disk) or
    ``failed`` (``error`` gives each mirror's reason)."""

    status: str
    bytes: int | None = None
    sha256: str | None = None
    url: str | None = None
    error: str = ""
    attempts: int = 0


@dataclass
class _Attempt:
    errors: list[str] = field(default_factory=list)
    count: int = 0


def verify_image_bytes(body: bytes, name: str) -> None:
    """Raise :class:`ImageLoadError` unless ``body`` decodes as an image."""
    open_image(body, draft_size=VERIFY_DRAFT_SIZE).close()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _save_image(body: bytes, url: str, target: Path) -> str:
    """Check that ``body`` decodes, write it atomically to ``target``, return its sha256."""
    verify_image_bytes(body, url)
    atomic_write_bytes(target, body)
    return _sha256(body)


def _existing(job: FetchJob, verify: str) -> FetchResult | None:
    """The result for a target already on disk and complete, else None."""
    if not job.target.is_file():
        return None
    size = job.target.stat().st_size
    if job.expected_bytes is not None and job.expected_sha256:
        if size != job.expected_bytes:
            return None
        if verify == "hash" and _sha256(job.target.read_bytes()) != job.expected_sha256:
            return None
        return FetchResult("existing", size, job.expected_sha256)
    # On disk but not recorded (a mounted folder, or a run killed before it saved the
    # manifest): use it as it is if it is an image.
    data = job.target.read_bytes()
    try:
        verify_image_bytes(data, str(job.target))
    except ImageLoadError:
        return None
    return FetchResult("existing", size, _sha256(data))


class _RateLimiter:
    """Spaces request starts at least ``1 / rate`` seconds apart."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_start = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = time.monotonic()
            delay = self.next_start - now
            self.next_start = max(now, self.next_start) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)


class _Fetcher:
    def __init__(self, client: httpx.AsyncClient, options: FetchOptions) -> None:
        self.client = client
        self.options = options
        self.limiter = _RateLimiter(options.rate_limit)

    async def _get(self, url: str) -> bytes:
        """The body of ``url``. Raises httpx errors; ``_Retry`` for retryable statuses."""
        await self.limiter.wait()
        response = await self.client.get(url)
        if response.status_code in RETRY_STATUS:
            raise _Retry(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise _NextMirror(f"HTTP {response.status_code}")
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) != len(response.content):
            raise _Retry(f"truncated body ({len(response.content)} of {declared} bytes)")
        return response.content

    async def _from_mirror(self, url: str, target: Path, attempt: _Attempt
                           ) -> tuple[bytes, str] | None:
        """The body saved at ``target`` and its sha256, or None (reasons in ``attempt``)."""
        for retry in range(self.options.retries + 1):
            attempt.count += 1
            try:
                body = await self._get(url)
                # Decoding and hashing off the event loop, in one hop.
                return body, await asyncio.to_thread(_save_image, body, url, target)
            except _NextMirror as error:
                attempt.errors.append(f"{url}: {error}")
                return None
            except ImageLoadError as error:
                attempt.errors.append(f"{url}: not an image ({error.reason})")
                return None
            except httpx.TimeoutException:
                reason = f"timed out after {self.options.timeout_s:g} s"
            except (_Retry, httpx.TransportError) as error:
                reason = str(error) or type(error).__name__
            if retry < self.options.retries:
                delay = self.options.backoff_s * 2 ** retry
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
        attempt.errors.append(f"{url}: {reason} ({self.options.retries + 1} attempts)")
        return None

    async def fetch(self, job: FetchJob) -> FetchResult:
        existing = await asyncio.to_thread(_existing, job, self.options.verify)
        if existing is not None:
            return existing
        attempt = _Attempt()
        for url in job.urls:
            saved = await self._from_mirror(url, job.target, attempt)
            if saved is not None:
                body, sha256 = saved
                return FetchResult("ok", len(body), sha256, url, attempts=attempt.count)
        error = "; ".join(attempt.errors) or "no URL to download from"
        return FetchResult("failed", error=error, attempts=attempt.count)


class _Retry(Exception):
    """A response worth trying again on the same mirror."""


class _NextMirror(Exception):
    """A response that the same mirror will give again."""


ResultFn = Callable[[int, FetchResult], None]


async def _fetch_all(jobs: Sequence[FetchJob], options: FetchOptions,
                     on_result: ResultFn) -> list[FetchResult | None]:
    results: list[FetchResult | None] = [None] * len(jobs)
    limits = httpx.Limits(max_connections=options.concurrency,
                          max_keepalive_connections=options.concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(options.timeout_s), limits=limits,
                                 follow_redirects=True,
                                 headers={"User-Agent": USER_AGENT}) as client:
        fetcher = _Fetcher(client, options)
        pending = iter(range(len(jobs)))

        async def worker() -> None:
            for index in pending:
                result = await fetcher.fetch(jobs[index])
                results[index] = result
                on_result(index, result)

        workers = [asyncio.create_task(worker())
                   for _ in range(max(1, min(options.concurrency, len(jobs))))]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
    return results


def fetch_images(jobs: Sequence[FetchJob], options: FetchOptions | None = None,
                 on_result: ResultFn | None = None) -> list[FetchResult]:
    """Download ``jobs``; ``on_result(index, result)`` is called as each one ends (an exception
    it raises, e.g. a cancelled job, stops the batch and propagates)."""
    if not jobs:
        return []
    results = asyncio.run(_fetch_all(jobs, options or FetchOptions(),
                                     on_result or (lambda index, result: None)))
    return [result or FetchResult("failed", error="not attempted") for result in results]
