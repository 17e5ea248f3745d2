"""The review store: jobs, classified detections and append-only verdicts.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("md_file", sa.Text, nullable=False),
        sa.Column("image_base", sa.Text, nullable=False),
        sa.Column("classes", sa.JSON, nullable=False),
        sa.Column("tiger_class", sa.String(100), nullable=False),
        sa.Column("tiger_threshold", sa.Float, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "review_detections",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("review_jobs.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("file", sa.Text, nullable=False),
        sa.Column("detection_index", sa.Integer, nullable=False),
        sa.Column("bbox", sa.JSON, nullable=False),
        sa.Column("conf", sa.Float, nullable=False),
        sa.Column("top_k", sa.JSON, nullable=False),
        sa.Column("tiger_score", sa.Float, nullable=True),
        sa.Column("tiger_flag", sa.Boolean, nullable=False),
        sa.Column("margin", sa.Float, nullable=False),
        sa.Column("entropy", sa.Float, nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("qc_rank", sa.Float, nullable=False),
        sa.UniqueConstraint("job_id", "file", "detection_index", name="uq_review_detection"),
    )
    op.create_table(
        "review_verdicts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("detection_id", sa.Integer,
                  sa.ForeignKey("review_detections.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("label", sa.String(100), nullable=True),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("review_verdicts")
    op.drop_table("review_detections")
    op.drop_table("review_jobs")
