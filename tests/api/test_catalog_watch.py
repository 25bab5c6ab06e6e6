"""``CTXFY_PROMPTS_WATCH``: the app's lifespan runs the watcher, and stops it promptly."""

from pathlib import Path

import anyio
import pytest

from infrastructure.catalog.catalog import PromptCatalog
from tests.api.catalog_files import versioned_app, versioned_prompts, write_version
from tests.api.harness import serving, state_of

pytestmark = pytest.mark.anyio

WATCH_TIMEOUT = 10.0


async def test_an_edited_prompts_directory_is_served_without_a_reload_request(
    tmp_path: Path,
) -> None:
    prompts = versioned_prompts(tmp_path / "prompts")
    app = versioned_app(prompts, settings={"prompts_watch": True})
    changed = anyio.Event()

    async def heard(old: PromptCatalog, new: PromptCatalog, change: object) -> None:
        changed.set()

    state_of(app).catalog.on_change(heard)
    async with serving(app) as client:
        await anyio.wait_all_tasks_blocked()  # the watcher is waiting for changes
        write_version(prompts, "1.2.0")
        with anyio.fail_after(WATCH_TIMEOUT):
            await changed.wait()
        described = (await client.get("/v1/prompts/greet")).json()
        stopping = anyio.current_time()
    # Leaving the lifespan stops the watcher without waiting out its thread's timeout.
    assert anyio.current_time() - stopping < 2.0
    assert described["version"] == "1.2.0"


def test_without_watching_no_watcher_is_built(tmp_path: Path) -> None:
    prompts = versioned_prompts(tmp_path / "prompts")
    assert state_of(versioned_app(prompts)).catalog_watcher is None
