"""The review store, the same tests on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.review.classified import CLASSES, FRAMES
from tests.review.conftest import JOB
from tigertrap.classify.review.store import (
    DatabaseUnreachable,
    DetectionNotFound,
    InvalidVerdict,
    MigrationFailed,
    ReviewStore,
    current_verdicts,
    migrations_folder,
)

FAILING_MIGRATION = '''"""Adds a table, then fails."""
import sqlalchemy as sa
from alembic import op

revision = "0099"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    op.add_column("review_verdicts", sa.Column("note", sa.Text))
    op.execute("SELECT no_such_function()")


def downgrade() -> None:
    pass
'''


def test_intake_holds_crop_reference_top_k_and_tiger_score(job_store: ReviewStore) -> None:
    rows = job_store.detections(JOB)
    assert len(rows) == len(FRAMES)
    first = rows[0]
    assert first["file"].startswith("cam-a/00_")
    assert first["detection_index"] == 0
    assert first["bbox"] == [0.2, 0.25, 0.4, 0.5]
    assert first["top_k"][0] == ["tiger", 0.91]
    assert first["tiger_score"] == 0.91 and first["tiger_flag"]
    assert first["location"] == "cam-a"
    assert job_store.job(JOB)["classes"] == CLASSES


def test_verdicts_carry_who_and_when_and_keep_their_history(job_store: ReviewStore) -> None:
    detection = job_store.detections(JOB)[0]["id"]
    job_store.add_verdict(detection, "tiger", "asha")
    job_store.add_verdict(detection, "leopard", "asha")
    job_store.add_verdict(detection, "tiger", "bikram")
    job_store.add_verdict(detection, None, "bikram")  # undo
    history = job_store.history([detection])[detection]
    assert [(v.reviewer, v.label) for v in history] == [
        ("asha", "tiger"), ("asha", "leopard"), ("bikram", "tiger"), ("bikram", None)]
    assert all(v.created_at.tzinfo is not None for v in history)
    assert [(v.reviewer, v.label) for v in current_verdicts(history)] == [("asha", "leopard")]


def test_two_reviewers_answering_at_once_both_keep_their_records(
        job_store: ReviewStore) -> None:
    detection = job_store.detections(JOB)[1]["id"]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def answer(reviewer: str, label: str) -> None:
        try:
            barrier.wait()
            job_store.add_verdict(detection, label, reviewer)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=answer, args=pair)
               for pair in (("asha", "tiger"), ("bikram", "leopard"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    current = current_verdicts(job_store.history([detection])[detection])
    assert {(v.reviewer, v.label) for v in current} == {("asha", "tiger"), ("bikram", "leopard")}


def test_verdict_for_a_detection_that_does_not_exist_is_not_found(
        job_store: ReviewStore) -> None:
    with pytest.raises(DetectionNotFound, match="no detection 999999"):
        job_store.add_verdict(999999, "tiger", "asha")


def test_verdict_outside_the_class_map_is_refused_naming_the_labels(
        job_store: ReviewStore) -> None:
    detection = job_store.detections(JOB)[0]["id"]
    with pytest.raises(InvalidVerdict, match="tiger, leopard, deer, not_an_animal, unsure"):
        job_store.add_verdict(detection, "lion", "asha")


def test_failed_migration_leaves_the_previous_schema_intact(store_url: str,
                                                            tmp_path: Path) -> None:
    store = ReviewStore.open(store_url)
    head = store.migrate()
    scripts = Path(shutil.copytree(migrations_folder(), tmp_path / "migrations"))
    (scripts / "versions" / "0099_fails.py").write_text(
        FAILING_MIGRATION.format(head=head), encoding="utf-8")
    with pytest.raises(MigrationFailed, match="rolled back"):
        store.migrate(scripts)
    inspector = sa.inspect(store.engine)
    assert "half_done" not in inspector.get_table_names()
    assert "note" not in {c["name"] for c in inspector.get_columns("review_verdicts")}
    assert store.migrate() == head
    store.close()


def test_unreachable_database_stops_naming_database_url(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://someone:secret@/review?host={tmp_path / 'nowhere'}"
    with pytest.raises(DatabaseUnreachable, match="DATABASE_URL") as caught:
        ReviewStore.open(url)
    assert "secret" not in str(caught.value)


def test_queue_puts_tiger_flags_first_then_lowest_margin_then_a_qc_sample(
        job_store: ReviewStore) -> None:
    from tigertrap.classify.review.queues import job_queue

    ids = [row["id"] for row in job_store.detections(JOB)]
    queue = job_queue(job_store, JOB)
    assert queue.items[:4] == [(ids[0], "tiger"), (ids[1], "tiger"),
                               (ids[3], "uncertain"), (ids[2], "uncertain")]
    assert [section for _, section in queue.items[4:]] == ["qc"]
    assert queue.counts["tiger"] == {"total": 2, "reviewed": 0}
    job_store.add_verdict(ids[0], "tiger", "asha")
    job_store.add_verdict(ids[3], "unsure", "asha")
    queue = job_queue(job_store, JOB)
    assert queue.counts["tiger"]["reviewed"] == 1
    assert queue.progress == {"total": 5, "reviewed": 2, "fraction": 0.4}


def test_stores_opening_at_once_on_a_new_database_migrate_once(store_url: str) -> None:
    opened: list[ReviewStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def open_store() -> None:
        try:
            barrier.wait()
            opened.append(ReviewStore.open(store_url))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len({store.migrate() for store in opened}) == 1
    for store in opened:
        store.close()
