"""The file watcher: each burst of prompt-file changes reloads the live catalog.

The loop is driven by scripted bursts first (deterministic), then by ``watchfiles`` itself
on a real directory, including the symlink swap a Kubernetes ConfigMap volume does.
"""

import os
import shutil
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
import watchfiles
from anyio.lowlevel import checkpoint
from structlog.testing import capture_logs

from app.services.catalog import LiveCatalog, ReloadOutcome, ReloadTrigger
from app.services.catalog_watch import CatalogWatcher
from infrastructure.catalog.catalog import PromptCatalog
from infrastructure.catalog.loader import load_catalog
from infrastructure.catalog.watch import PromptFileFilter, prompt_file_changes
from infrastructure.metrics import Metrics
from tests.integration.prompt_files import prompt, write_prompt

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WATCH_TIMEOUT = 10.0  # a burst is yielded 50 ms after its last change; this is the bound


def live_catalog(directory: Path, metrics: Metrics | None = None) -> LiveCatalog:
    return LiveCatalog(
        load_catalog(directory),
        load=lambda: load_catalog(directory),
        metrics=metrics or Metrics(version="test"),
        now=lambda: NOW,
    )


def greet_version(live: LiveCatalog) -> str:
    return live.current.get("greet").version


def scripted(
    *edits: Callable[[], object],
) -> Callable[[Path, anyio.Event], AsyncIterator[frozenset[Path]]]:
    """A change source that makes each edit, then reports it as one burst."""

    async def changes(directory: Path, stop: anyio.Event) -> AsyncIterator[frozenset[Path]]:
        for edit in edits:
            edit()
            yield frozenset({directory / "greet.yaml"})

    return changes


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    directory = tmp_path / "prompts"
    directory.mkdir()
    write_prompt(directory, prompt(), "greet.yaml")
    return directory


async def test_each_burst_of_changes_reloads_the_catalog_once(prompts: Path) -> None:
    metrics = Metrics(version="test")
    live = live_catalog(prompts, metrics)
    watcher = CatalogWatcher(
        prompts,
        live,
        changes=scripted(
            lambda: write_prompt(prompts, prompt(version="1.1.0"), "greet-1.1.0.yaml"),
            lambda: None,  # a burst that changed nothing a prompt is made of
        ),
    )

    await watcher.run()

    assert greet_version(live) == "1.1.0"
    samples = {
        outcome: metrics.registry.get_sample_value(
            "ctxfy_catalog_reload_total", {"trigger": "watch", "outcome": outcome}
        )
        for outcome in ("changed", "unchanged")
    }
    assert samples == {"changed": 1, "unchanged": 1}


async def test_a_half_written_file_fails_one_reload_and_the_rest_of_the_write_succeeds(
    prompts: Path,
) -> None:
    live = live_catalog(prompts)
    outcomes: list[ReloadOutcome | None] = []

    def half_written() -> None:
        (prompts / "greet-1.1.0.yaml").write_text("name: greet\nversion: 1.1", "utf-8")

    def finished() -> None:
        outcomes.append(live.last_reload.outcome if live.last_reload else None)
        assert greet_version(live) == "1.0.0"  # the old catalog served meanwhile
        write_prompt(prompts, prompt(version="1.1.0"), "greet-1.1.0.yaml")

    await CatalogWatcher(prompts, live, changes=scripted(half_written, finished)).run()

    assert outcomes == [ReloadOutcome.FAILED]
    assert live.last_reload is not None
    assert live.last_reload.outcome is ReloadOutcome.CHANGED
    assert greet_version(live) == "1.1.0"


async def test_a_watcher_that_fails_is_logged_and_does_not_raise(prompts: Path) -> None:
    async def broken(directory: Path, stop: anyio.Event) -> AsyncIterator[frozenset[Path]]:
        await checkpoint()
        raise OSError("inotify watch limit reached")
        yield frozenset()  # pragma: no cover — makes this an async generator

    with capture_logs() as logs:
        await CatalogWatcher(prompts, live_catalog(prompts), changes=broken).run()

    failed = [line for line in logs if line["event"] == "catalog_watch_failed"]
    assert [line["log_level"] for line in failed] == ["error"]
    assert failed[0]["directory"] == str(prompts)


@pytest.mark.parametrize(
    ("path", "watched"),
    [
        ("/srv/prompts/greet.yaml", True),
        ("/srv/prompts/greet.yml", True),
        ("/srv/prompts/..2026_12_01/greet.yaml", True),
        ("/srv/prompts/README.md", False),
        ("/srv/prompts/greet.yaml~", False),
        ("/srv/prompts/.greet.yaml.swp", False),
        ("/srv/prompts/.#greet.yaml", False),
        ("/srv/prompts/.git/greet.yaml", False),
    ],
)
def test_only_prompt_files_count_as_changes(path: str, watched: bool) -> None:
    assert PromptFileFilter()(watchfiles.Change.modified, path) is watched


async def watch_until_changed(
    live: LiveCatalog, directory: Path, edit: Callable[[], object]
) -> tuple[PromptCatalog, float]:
    """Run the real watcher, make ``edit`` once it watches, and wait (bounded) for the
    reload; then stop it. Returns the new catalog and how long stopping took."""
    changed = anyio.Event()

    async def heard(old: PromptCatalog, new: PromptCatalog, change: object) -> None:
        changed.set()

    live.on_change(heard)
    watcher = CatalogWatcher(directory, live, changes=prompt_file_changes)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watcher.run)
        await anyio.wait_all_tasks_blocked()  # the watcher is waiting for changes in its thread
        edit()
        with anyio.fail_after(WATCH_TIMEOUT):
            await changed.wait()
        stopping = anyio.current_time()
        watcher.stop()
    return live.current, anyio.current_time() - stopping


async def test_a_new_version_file_is_seen_by_the_real_watcher(prompts: Path) -> None:
    live = live_catalog(prompts)

    catalog, stopping = await watch_until_changed(
        live, prompts, lambda: write_prompt(prompts, prompt(version="1.1.0"), "greet-1.1.0.yaml")
    )

    assert catalog.get("greet").version == "1.1.0"
    assert [entry.version for entry in catalog.versions("greet")] == ["1.1.0", "1.0.0"]
    assert live.last_reload is not None
    assert live.last_reload.trigger is ReloadTrigger.WATCH
    # Stopping does not wait out the watch thread's 5 s timeout.
    assert stopping < 2.0


async def test_a_configmap_style_symlink_swap_is_seen_by_the_real_watcher(tmp_path: Path) -> None:
    # How the kubelet updates a ConfigMap volume: files are symlinks through ..data, and an
    # update writes a new timestamped directory, swaps ..data to it and deletes the old one.
    volume = tmp_path / "volume"
    (volume / "..v1").mkdir(parents=True)
    write_prompt(volume / "..v1", prompt(), "greet.yaml")
    (volume / "..data").symlink_to("..v1")
    (volume / "greet.yaml").symlink_to("..data/greet.yaml")
    live = live_catalog(volume)

    def swap() -> None:
        (volume / "..v2").mkdir()
        write_prompt(volume / "..v2", prompt(version="2.0.0"), "greet.yaml")
        (volume / "..data_tmp").symlink_to("..v2")
        os.replace(volume / "..data_tmp", volume / "..data")
        shutil.rmtree(volume / "..v1")

    catalog, _ = await watch_until_changed(live, volume, swap)

    assert catalog.get("greet").version == "2.0.0"
