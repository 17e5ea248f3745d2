"""tigertrap.download: the first stage of the pipeline.

Turns LILA BC's metadata file and the CVWC2019 Amur tiger images into a training set laid out as
``datasets/<name>/images/<split>/<class>/<file>`` with ``manifest.csv`` (one row per image) and
``split_report.json`` (the proof that no location or sequence spans two splits).

Modules: ``spec`` (the class spec YAML), ``metadata`` (streaming the LILA CSV), ``sampling``
(seeded, spread selection), ``splits`` (leak-free split assignment and report), ``manifest``
(the manifest CSV), ``fetch`` (concurrent resumable downloads), ``cvwc`` (CVWC2019 import),
``md_subset`` (published MegaDetector results), ``lila`` (the stage function), ``config``,
``cli`` and ``tasks`` (adapters).
"""
