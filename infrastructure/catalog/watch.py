"""Changes to prompt files, as ``watchfiles`` reports them (inotify, FSEvents, or polling)."""

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import watchfiles

from infrastructure.catalog.loader import PROMPT_SUFFIXES


class PromptFileFilter(watchfiles.DefaultFilter):
    """Prompt files only (``.yaml``, ``.yml``), and not in the directories ``DefaultFilter``
    skips (``.git``, ``__pycache__``, …) or editors' swap and backup files."""

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        return path.endswith(PROMPT_SUFFIXES) and super().__call__(change, path)


async def prompt_file_changes(directory: Path, stop: anyio.Event) -> AsyncIterator[frozenset[Path]]:
    """Each burst of changes to prompt files under ``directory``, until ``stop`` is set.

    A burst ends 50 ms after its last change, or at most 1.6 s after its first (an editor's
    save, a ``git pull``, a Kubernetes ConfigMap swap each arrive as one). Sub-directories are
    watched too: a ConfigMap volume swaps a symlinked directory of files.
    """
    async for changes in watchfiles.awatch(
        directory, watch_filter=PromptFileFilter(), stop_event=stop, recursive=True
    ):
        yield frozenset(Path(path) for _, path in changes)
