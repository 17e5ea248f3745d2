"""Settings of the review store and its commands: where the data is and which database."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from tigertrap.core.config import StageSettings

__all__ = ["ReviewSettings"]


class ReviewSettings(StageSettings):
    """``TIGERTRAP_DATA`` and ``DATABASE_URL`` (unset: SQLite at
    ``<data>/review/review.sqlite``)."""

    tigertrap_data: Path = Field(default=Path("data"), description="the data root")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the review database, e.g. "
                                  "postgresql+psycopg://user:pw@host/db; unset: SQLite under "
                                  "the data root")

    def store_url(self) -> str:
        from tigertrap.classify.review.store import database_url

        return database_url(self.tigertrap_data, self.database_url)
