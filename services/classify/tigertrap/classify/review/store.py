"""The review store on SQLAlchemy: SQLite under the data root by default, PostgreSQL (or any
SQLAlchemy URL) when ``DATABASE_URL`` is set; the schema is :mod:`.schema`, brought up to date
by the Alembic migrations shipped in :mod:`.migrations` whenever the store opens.

All pending migrations run in one transaction (PostgreSQL's DDL is transactional; SQLite's is
made so by issuing ``BEGIN`` ourselves instead of pysqlite's deferred one), so a migration that
fails leaves the previous schema and ``alembic_version`` as they were.

Verdicts are append-only (see :mod:`.schema`): a new verdict, or an undo (a null label), is a
new row; nothing is updated, so concurrent reviewers never overwrite each other.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.resources import files
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from tigertrap.classify.review.schema import SPECIAL_LABELS, detections, jobs, verdicts

__all__ = [
    "DEFAULT_SQLITE_FILE",
    "DatabaseUnreachable",
    "DetectionNotFound",
    "InvalidVerdict",
    "JobExists",
    "MigrationFailed",
    "ReviewJobNotFound",
    "ReviewStore",
    "Verdict",
    "agreed_label",
    "current_verdicts",
    "database_url",
    "migrations_folder",
    "safe_url",
]

#: The embedded default, relative to the data root.
DEFAULT_SQLITE_FILE = "review/review.sqlite"
#: The settings key that names another database.
URL_KEY = "DATABASE_URL"
#: PostgreSQL advisory lock key held while migrating (SQLite's BEGIN IMMEDIATE serialises).
MIGRATION_LOCK = 0x7167_7274
#: Longest reviewer name kept (the column's width).
MAX_REVIEWER = 100


class DatabaseUnreachable(RuntimeError):
    """The database named by ``DATABASE_URL`` (or the default SQLite file) cannot be opened."""


class MigrationFailed(RuntimeError):
    """A schema migration failed; the previous schema is intact."""


class ReviewJobNotFound(LookupError):
    """No review job of that name."""


class JobExists(ValueError):
    """A review job of that name is already in the store."""


class DetectionNotFound(LookupError):
    """No detection with that id."""


class InvalidVerdict(ValueError):
    """A verdict whose label or reviewer the store refuses; the message says what to send."""


def database_url(data_root: str | Path, configured: str | None) -> str:
    """``configured`` when set, else the SQLite file under ``data_root`` (folder created)."""
    if configured:
        return configured
    path = Path(data_root) / DEFAULT_SQLITE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def safe_url(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def migrations_folder() -> Path:
    """The Alembic script folder shipped in the package."""
    return Path(str(files("tigertrap.classify.review").joinpath("migrations")))


#: How long a new connection keeps asking for WAL mode while another one holds the database.
WAL_WAIT_S = 30.0


def _set_wal(dbapi_connection: Any) -> None:
    """WAL journal mode (persistent in the file). Switching needs the database to itself and
    SQLite answers "locked" at once, without its busy timeout, while another connection (a
    store opening at the same moment) is migrating: ask again until that one is done."""
    deadline = time.monotonic() + WAL_WAIT_S
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # a retry interval, not synchronisation


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we say BEGIN ourselves (transactional DDL)
        dbapi_connection.execute("PRAGMA foreign_keys=ON")
        _set_wal(dbapi_connection)

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Verdict:
    """One verdict row."""

    id: int
    detection_id: int
    label: str | None
    reviewer: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "detection_id": self.detection_id, "label": self.label,
                "reviewer": self.reviewer, "created_at": self.created_at.isoformat()}


def current_verdicts(history: Iterable[Verdict]) -> list[Verdict]:
    """Each reviewer's latest verdict, withdrawn ones (null label) left out, oldest first."""
    latest: dict[str, Verdict] = {}
    for verdict in sorted(history, key=lambda v: (v.created_at, v.id)):
        latest[verdict.reviewer] = verdict
    return [v for v in latest.values() if v.label is not None]


def agreed_label(current: Sequence[Verdict]) -> str | None:
    """The label all current verdicts share; None when there is none or they disagree."""
    labels = {v.label for v in current}
    return labels.pop() if len(labels) == 1 else None


class ReviewStore:
    """The review store on one SQLAlchemy engine. Open with :meth:`open`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, migrate: bool = True,
             script_location: str | Path | None = None) -> ReviewStore:
        """Connect to ``url`` and bring the schema up to date.

        Raises:
            DatabaseUnreachable: the database does not answer (the message names
                ``DATABASE_URL`` and the URL, password hidden).
            MigrationFailed: a migration failed; the schema is as it was before.
        """
        engine = _make_engine(url)
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except sa.exc.SQLAlchemyError as error:
            engine.dispose()
            raise DatabaseUnreachable(
                f"{URL_KEY}: cannot reach the review database at {safe_url(url)} "
                f"({type(error.orig or error).__name__}: {str(error.orig or error).strip()}); "
                f"start it, or correct {URL_KEY} (unset: SQLite under the data root)") from None
        store = cls(engine)
        if migrate:
            store.migrate(script_location)
        return store

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self, script_location: str | Path | None = None) -> str | None:
        """Run pending migrations in one transaction; return the schema revision."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext

        config = Config()
        config.set_main_option("script_location", str(script_location or migrations_folder()))
        try:
            with self.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # API workers starting together migrate one after the other.
                    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except Exception as error:
            raise MigrationFailed(
                f"the review store's schema migration failed and was rolled back "
                f"({type(error).__name__}: {error})") from error
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    # jobs --------------------------------------------------------------------------------

    def add_job(self, *, name: str, md_file: str, image_base: str, classes: Sequence[str],
                tiger_class: str, tiger_threshold: float | None,
                rows: Iterable[Mapping[str, Any]]) -> int:
        """Add a job and its classified detections (as :mod:`.intake` builds them)."""
        with self.engine.begin() as connection:
            if connection.execute(sa.select(jobs.c.id).where(jobs.c.name == name)).first():
                raise JobExists(f"a review job named {name!r} exists already")
            job_id = connection.execute(jobs.insert().values(
                name=name, md_file=md_file, image_base=image_base, classes=list(classes),
                tiger_class=tiger_class, tiger_threshold=tiger_threshold,
                created_at=_now())).inserted_primary_key[0]
            batch = [{**row, "job_id": job_id} for row in rows]
            if batch:
                connection.execute(detections.insert(), batch)
        return int(job_id)

    def job(self, name: str) -> dict[str, Any]:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(jobs).where(jobs.c.name == name)).mappings().first()
        if row is None:
            raise ReviewJobNotFound(f"no review job named {name!r}")
        return dict(row)

    def job_names(self) -> list[str]:
        with self.engine.connect() as connection:
            return list(connection.execute(sa.select(jobs.c.name).order_by(jobs.c.id)).scalars())

    def job_of(self, detection_id: int) -> dict[str, Any]:
        """The job a detection belongs to."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(jobs).join(detections, detections.c.job_id == jobs.c.id)
                .where(detections.c.id == detection_id)).mappings().first()
        if row is None:
            raise DetectionNotFound(f"no detection {detection_id}")
        return dict(row)

    # detections and verdicts ---------------------------------------------------------------

    def detections(self, job_name: str) -> list[dict[str, Any]]:
        """Every detection of a job, in intake order."""
        job = self.job(job_name)
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(detections).where(
                detections.c.job_id == job["id"]).order_by(detections.c.id)).mappings()
            return [dict(row) for row in rows]

    def detection(self, detection_id: int) -> dict[str, Any]:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(detections).where(
                detections.c.id == detection_id)).mappings().first()
        if row is None:
            raise DetectionNotFound(f"no detection {detection_id}")
        return dict(row)

    def add_verdict(self, detection_id: int, label: str | None, reviewer: str) -> Verdict:
        """Record ``reviewer``'s verdict (None withdraws their previous one).

        Raises:
            DetectionNotFound: no such detection.
            InvalidVerdict: the label is not a class of the job, ``not_an_animal`` or
                ``unsure``; or the reviewer name is empty or too long.
        """
        reviewer = reviewer.strip()
        if not reviewer or len(reviewer) > MAX_REVIEWER:
            raise InvalidVerdict(f"give the reviewer's name (1 to {MAX_REVIEWER} characters)")
        job = self.job_of(detection_id)
        allowed = [*job["classes"], *SPECIAL_LABELS]
        if label is not None and label not in allowed:
            raise InvalidVerdict(f"label {label!r} is not one of {', '.join(allowed)} "
                                 "(or null to withdraw)")
        created = _now()
        with self.engine.begin() as connection:
            verdict_id = connection.execute(verdicts.insert().values(
                detection_id=detection_id, label=label, reviewer=reviewer,
                created_at=created)).inserted_primary_key[0]
        return Verdict(int(verdict_id), detection_id, label, reviewer, created)

    def history(self, detection_ids: Iterable[int]) -> dict[int, list[Verdict]]:
        """Every verdict of each detection, oldest first."""
        ids = list(detection_ids)
        found: dict[int, list[Verdict]] = {i: [] for i in ids}
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(verdicts).where(
                verdicts.c.detection_id.in_(ids)).order_by(verdicts.c.created_at,
                                                           verdicts.c.id)).mappings()
            for row in rows:
                found[row["detection_id"]].append(Verdict(
                    row["id"], row["detection_id"], row["label"], row["reviewer"],
                    _as_utc(row["created_at"])))
        return found

    def job_history(self, job_name: str) -> dict[int, list[Verdict]]:
        """Every verdict of every detection of a job."""
        job = self.job(job_name)
        with self.engine.connect() as connection:
            ids = connection.execute(sa.select(detections.c.id).where(
                detections.c.job_id == job["id"])).scalars().all()
        return self.history(ids)

    def detection_record(self, detection_id: int) -> dict[str, Any]:
        """A detection with its job's name and classes, its current verdicts, whether they
        conflict, and its whole verdict history (what the review page shows)."""
        row = self.detection(detection_id)
        job = self.job_of(detection_id)
        history = self.history([detection_id])[detection_id]
        current = current_verdicts(history)
        return {**row, "job": job["name"], "classes": job["classes"],
                "current": [v.as_json() for v in current],
                "conflict": len({v.label for v in current}) > 1,
                "agreed": agreed_label(current),
                "history": [v.as_json() for v in history]}
