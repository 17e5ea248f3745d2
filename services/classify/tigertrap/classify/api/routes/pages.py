"""``GET /``: the web page (static HTML + JS, no build step) for trying the classifier;
``GET /review``: the review page (verdicts on a review job's detections)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    """The upload page."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/review")
def review() -> FileResponse:
    """The review page."""
    return FileResponse(STATIC_DIR / "review.html", media_type="text/html")
