"""Reload the catalog when its prompt files change (``CTXFY_PROMPTS_WATCH``).

Each process watches for itself, so every worker reloads; a reload validates first, so a
file caught half-written fails, leaves the old catalog serving, and the next change (the
rest of the write) reloads again.
"""

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import structlog

from app.services.catalog import LiveCatalog, ReloadTrigger

logger = structlog.get_logger(__name__)

type ChangeSource = Callable[[Path, anyio.Event], AsyncIterator[frozenset[Path]]]
_MAX_LOGGED = 20  # file names on one log line


class CatalogWatcher:
    """Watches a prompts directory and reloads the live catalog after each burst of changes."""

    def __init__(self, directory: Path, catalog: LiveCatalog, *, changes: ChangeSource) -> None:
        self.directory = directory
        self._catalog = catalog
        self._changes = changes
        self._stop = anyio.Event()

    async def run(self) -> None:
        """Watch until ``stop``; a watcher that fails is logged, and serving goes on."""
        self._stop = anyio.Event()
        logger.info("catalog_watch_started", directory=str(self.directory))
        try:
            async for paths in self._changes(self.directory, self._stop):
                names = sorted(path.name for path in paths)
                logger.info("prompt_files_changed", files=names[:_MAX_LOGGED], count=len(names))
                await self._catalog.reload(ReloadTrigger.WATCH)
        except Exception:  # the watcher's outermost boundary: serving must go on without it
            logger.exception("catalog_watch_failed", directory=str(self.directory))

    def stop(self) -> None:
        """End ``run`` promptly (the watch thread notices within 50 ms)."""
        self._stop.set()
