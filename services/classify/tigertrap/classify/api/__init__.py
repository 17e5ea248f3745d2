"""The HTTP API of tigertrap (FastAPI): jobs, classification, models, health, metrics, web page.

``create_app(settings)`` builds the app; ``tigertrap serve`` runs it with uvicorn.
"""

from tigertrap.classify.api.app import create_app

__all__ = ["create_app"]
