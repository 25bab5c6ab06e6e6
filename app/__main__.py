"""``python -m app`` runs the ``ctxfy`` command."""

from app.cli import main

main()
