"""``python -m tigertrap.core`` runs the ``tigertrap`` command."""

from tigertrap.core.cli import main

main()
