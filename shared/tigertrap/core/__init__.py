"""tigertrap.core: the library every tigertrap service uses.

One module per concept: ``md_results`` (MegaDetector batch JSON), ``images`` (safe image
opening), ``paths`` (data-root paths, atomic writes), ``class_map`` (model output order),
``config`` (settings), ``queue`` and ``jobs`` (Celery on Redis), ``cli`` (the ``tigertrap``
command), ``redis_server`` and ``stack`` (running it all locally).
"""
