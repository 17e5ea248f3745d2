"""The review store's tables: one declaration, used by the store and by the first migration.

``review_jobs``
    A classify job brought in for review: ``name`` (unique; the classify job id or the name
    given at intake), ``md_file`` (the classified MegaDetector file, relative to the data
    root), ``image_base`` (the folder its ``file`` values are relative to), ``classes`` (the
    class map in output order, JSON list), ``tiger_class``, ``tiger_threshold``, ``created_at``.
``review_detections``
    One classified detection of a job: the crop reference (``file`` relative to ``image_base``,
    ``detection_index`` in the classified MD file, ``bbox`` ``[x, y, w, h]`` normalised, ``conf``),
    the model's ``top_k`` (JSON list of ``[class, score]``, best first), ``tiger_score`` (null
    when tiger is not in the top-k), ``tiger_flag``, ``margin`` (top-1 minus top-2 score),
    ``entropy`` (of the top-k scores, renormalised), ``location`` (the camera: the manifest's
    location or the image's folder; keeps exported splits leak-free) and ``qc_rank`` (a fixed
    pseudo-random rank that draws the quality-control sample). Unique on
    ``(job_id, file, detection_index)``.
``review_verdicts``
    Append-only: every verdict ever given. ``label`` is a class of the job's class map,
    ``not_an_animal`` or ``unsure``; null means the reviewer withdrew their verdict (undo).
    ``reviewer`` and ``created_at`` (UTC) say who and when. A reviewer's current verdict on a
    detection is their latest row; the detection's verdicts disagree (a conflict) when current
    verdicts of different reviewers name different labels. Rows are never updated or deleted,
    so two people answering at once both keep their records.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["NOT_AN_ANIMAL", "SPECIAL_LABELS", "UNSURE", "detections", "jobs", "metadata",
           "verdicts"]

NOT_AN_ANIMAL = "not_an_animal"
UNSURE = "unsure"
#: Verdict labels besides the class map's names.
SPECIAL_LABELS = (NOT_AN_ANIMAL, UNSURE)

metadata = sa.MetaData()

jobs = sa.Table(
    "review_jobs", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("md_file", sa.Text, nullable=False),
    sa.Column("image_base", sa.Text, nullable=False),
    sa.Column("classes", sa.JSON, nullable=False),
    sa.Column("tiger_class", sa.String(100), nullable=False),
    sa.Column("tiger_threshold", sa.Float, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

detections = sa.Table(
    "review_detections", metadata,
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

verdicts = sa.Table(
    "review_verdicts", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("detection_id", sa.Integer,
              sa.ForeignKey("review_detections.id", ondelete="CASCADE"), nullable=False,
              index=True),
    sa.Column("label", sa.String(100), nullable=True),
    sa.Column("reviewer", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
