"""Fixtures of the review tests: a real PostgreSQL server, a store on SQLite and on PostgreSQL,
and a small classified job on real frames."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres_server import PostgresServer, running_postgres
from tests.review.classified import write_classified_job
from tigertrap.classify.review.intake import intake_job
from tigertrap.classify.review.store import ReviewStore, database_url
from tigertrap.core.redis_server import free_port

JOB = "job-1"
API_KEY = "review-key"
HEADERS = {"X-API-Key": API_KEY}


def server_env(data_root: Path, **extra: str) -> dict[str, str]:
    """Environment of a ``tigertrap serve`` for review tests: no model, the API key, Redis
    pointing where nothing listens (reviews do not need the job queue)."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTEST_CURRENT_TEST", "MODEL", "DATABASE_URL")}
    env.update(TIGERTRAP_DATA=str(data_root), TIGERTRAP_API_KEY=API_KEY, MODEL="",
               REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", **extra)
    return env


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session, on a Unix socket in a temporary folder."""
    with running_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: the SQLite default under a data root, or a new PostgreSQL one."""
    if request.param == "sqlite":
        return database_url(tmp_path / "data", None)
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture
def store(store_url: str) -> Iterator[ReviewStore]:
    opened = ReviewStore.open(store_url)
    yield opened
    opened.close()


@pytest.fixture
def job_store(store: ReviewStore, data_root: Path, fixtures_dir: Path) -> ReviewStore:
    """The store holding the classified job ``job-1``."""
    md_file = write_classified_job(data_root, fixtures_dir)
    intake_job(store, data_root, name=JOB, md_file=md_file)
    return store
