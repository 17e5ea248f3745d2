"""The review loop: people check the classifier's detections, and their verdicts become
training data.

* :mod:`.schema` — the review store's tables (the format's spec);
* :mod:`.store` — :class:`~.store.ReviewStore`, the store on SQLAlchemy (SQLite under the data
  root, PostgreSQL when ``DATABASE_URL`` is set), migrated with Alembic at open;
* :mod:`.intake` — a classify job's results into the store;
* :mod:`.queues` — the order in which to look: tiger flags, most uncertain, a QC sample;
* :mod:`.export` — reviewed crops as a training set (snip layout and ``snips.csv``).

The API serves it under ``/v1/reviews`` (``api/routes/reviews.py``) and the page ``/review``.
Retraining on an exported set is the train stage's (``tigertrap train-compare``): the
store itself never imports training code.
"""
