"""Reloading the live catalog: validated whole, swapped at once, or refused with the old kept."""

from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from app.services.catalog import (
    CatalogChange,
    LiveCatalog,
    ReloadOutcome,
    ReloadTrigger,
)
from infrastructure.catalog.catalog import PromptCatalog
from infrastructure.catalog.loader import load_catalog
from infrastructure.metrics import Metrics
from tests.integration.prompt_files import prompt, write_prompt

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GENERATION = {"system_prompt": "You greet people."}

type Heard = list[tuple[PromptCatalog, PromptCatalog, CatalogChange]]


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    write_prompt(tmp_path, prompt(), "greet-1.0.0.yaml")
    return tmp_path


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(version="test")


@pytest.fixture
def live(prompts: Path, metrics: Metrics) -> LiveCatalog:
    return LiveCatalog(
        load_catalog(prompts), load=lambda: load_catalog(prompts), metrics=metrics, now=lambda: NOW
    )


def reloads(metrics: Metrics, trigger: str, outcome: str) -> float | None:
    labels = {"trigger": trigger, "outcome": outcome}
    return metrics.registry.get_sample_value("ctxfy_catalog_reload_total", labels)


def listening(live: LiveCatalog) -> Heard:
    heard: Heard = []

    async def listener(old: PromptCatalog, new: PromptCatalog, change: CatalogChange) -> None:
        heard.append((old, new, change))

    live.on_change(listener)
    return heard


async def test_a_reload_of_unchanged_files_keeps_the_catalog_and_tells_nobody(
    live: LiveCatalog, metrics: Metrics
) -> None:
    serving = live.current
    heard = listening(live)
    report = await live.reload(ReloadTrigger.SIGNAL)
    assert report.outcome is ReloadOutcome.UNCHANGED
    assert live.current is serving
    assert (heard, report.change, report.digest) == ([], CatalogChange(), serving.digest)
    assert reloads(metrics, "signal", "unchanged") == 1


async def test_a_new_version_is_served_after_a_reload_and_listeners_hear_of_it(
    live: LiveCatalog, prompts: Path, metrics: Metrics
) -> None:
    old = live.current
    heard = listening(live)
    write_prompt(prompts, prompt(version="1.1.0", title="Greet again"), "greet-1.1.0.yaml")

    report = await live.reload(ReloadTrigger.API)

    new = live.current
    assert report.outcome is ReloadOutcome.CHANGED
    assert new.get("greet").version == "1.1.0"
    assert new.resolve("greet@1.0.0").definition.title == "Greet"
    assert old.get("greet").version == "1.0.0"  # a request holding the old one keeps it
    change = CatalogChange(added=("greet@1.1.0",), current_changed=("greet",))
    assert heard == [(old, new, change)]
    assert (report.change, report.digest, report.prompts, report.versions) == (
        change,
        new.digest,
        len(old),  # the built-ins and greet
        old.version_count + 1,
    )
    assert (report.at, report.trigger) == (NOW, ReloadTrigger.API)
    assert reloads(metrics, "api", "changed") == 1
    assert metrics.registry.get_sample_value("ctxfy_prompt_versions_loaded") == report.versions


async def test_a_broken_file_leaves_the_old_catalog_serving_and_is_reported(
    live: LiveCatalog, prompts: Path, metrics: Metrics
) -> None:
    serving = live.current
    heard = listening(live)
    broken = write_prompt(prompts, prompt(version="1.1.0", titel="typo"), "greet-1.1.0.yaml")

    with capture_logs() as logs:
        report = await live.reload(ReloadTrigger.WATCH)

    assert report.outcome is ReloadOutcome.FAILED
    assert live.current is serving
    assert heard == []
    assert report.error is not None
    assert report.error.startswith(f"{broken}: prompt 'greet': version '1.1.0': field 'titel'")
    assert (report.digest, report.versions) == (serving.digest, serving.version_count)
    assert reloads(metrics, "watch", "failed") == 1
    failed = [line for line in logs if line["event"] == "catalog_reload_failed"]
    assert [(f["log_level"], f["error"], f["kept"]) for f in failed] == [
        ("error", report.error, serving.digest)
    ]
    healthy, detail = live.health()
    assert healthy  # the old catalog still serves
    assert "failed and the previous catalog is serving" in detail
    assert str(broken) in detail

    write_prompt(prompts, prompt(version="1.1.0"), "greet-1.1.0.yaml")  # fixed
    fixed = await live.reload(ReloadTrigger.WATCH)
    assert fixed.outcome is ReloadOutcome.CHANGED
    assert live.last_failure is report
    assert "failed" not in live.health()[1]


async def test_a_removed_prompt_is_gone_after_the_reload(live: LiveCatalog, prompts: Path) -> None:
    write_prompt(prompts, prompt(name="other"), "other.yaml")
    await live.reload(ReloadTrigger.API)
    (prompts / "other.yaml").unlink()
    report = await live.reload(ReloadTrigger.API)
    assert report.change.removed == ("other@1.0.0",)
    assert "other" not in live.current


async def test_a_version_edited_in_place_counts_as_replaced(
    live: LiveCatalog, prompts: Path
) -> None:
    write_prompt(prompts, prompt(title="Greet, edited"), "greet-1.0.0.yaml")
    report = await live.reload(ReloadTrigger.API)
    assert (report.change.added, report.change.removed) == (("greet@1.0.0",), ("greet@1.0.0",))
    assert live.current.get("greet").definition.title == "Greet, edited"


async def test_generation_tools_change_when_a_current_version_gains_generation(
    live: LiveCatalog, prompts: Path
) -> None:
    write_prompt(prompts, prompt(version="1.0.1", title="Greet again"), "greet-1.0.1.yaml")
    plain = await live.reload(ReloadTrigger.API)
    assert not plain.change.tools_changed
    write_prompt(prompts, prompt(version="1.1.0", generation=GENERATION), "greet-1.1.0.yaml")
    generating = await live.reload(ReloadTrigger.API)
    assert generating.change.tools_changed


async def test_a_failing_listener_does_not_undo_the_swap_or_silence_the_others(
    live: LiveCatalog, prompts: Path
) -> None:
    async def failing(old: PromptCatalog, new: PromptCatalog, change: CatalogChange) -> None:
        raise RuntimeError("listener broke")

    live.on_change(failing)
    heard = listening(live)
    write_prompt(prompts, prompt(version="2.0.0"), "greet-2.0.0.yaml")
    with capture_logs() as logs:
        report = await live.reload(ReloadTrigger.API)
    assert report.outcome is ReloadOutcome.CHANGED
    assert live.current.get("greet").version == "2.0.0"
    assert len(heard) == 1
    assert "catalog_change_listener_failed" in [line["event"] for line in logs]


async def test_a_loader_fault_is_a_failed_reload_not_a_crash(metrics: Metrics) -> None:
    def broken_loader() -> PromptCatalog:
        raise OSError("disk on fire")

    live = LiveCatalog(PromptCatalog([]), load=broken_loader, metrics=metrics, now=lambda: NOW)
    with capture_logs():
        report = await live.reload(ReloadTrigger.SIGNAL)
    assert (report.outcome, report.error) == (ReloadOutcome.FAILED, "OSError: disk on fire")
    assert live.health() == (
        False,
        "0 prompts, 0 versions loaded; the last reload (signal, 2026-12-01T12:00:00+00:00) "
        "failed and the previous catalog is serving: OSError: disk on fire",
    )


async def test_concurrent_reloads_run_one_at_a_time(live: LiveCatalog, prompts: Path) -> None:
    write_prompt(prompts, prompt(version="1.1.0"), "greet-1.1.0.yaml")
    outcomes: list[ReloadOutcome] = []

    async def reload() -> None:
        outcomes.append((await live.reload(ReloadTrigger.API)).outcome)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(reload)
        tasks.start_soon(reload)
    # The second waited for the first, then found nothing new.
    assert outcomes == [ReloadOutcome.CHANGED, ReloadOutcome.UNCHANGED]


async def test_swap_hooks_serve_the_new_catalog_before_any_listener_is_awaited(
    live: LiveCatalog, prompts: Path
) -> None:
    order: list[str] = []

    async def slow_listener(old: PromptCatalog, new: PromptCatalog, _: CatalogChange) -> None:
        order.append("listener")

    def hook(new: PromptCatalog) -> None:
        assert live.current is new  # swapped already
        order.append("hook")

    def failing_hook(new: PromptCatalog) -> None:
        raise RuntimeError("hook broke")

    live.on_change(slow_listener)  # added first, still runs after every hook
    live.on_swap(failing_hook)
    live.on_swap(hook)
    write_prompt(prompts, prompt(version="3.0.0"), "greet-3.0.0.yaml")
    with capture_logs() as logs:
        await live.reload(ReloadTrigger.API)
    assert order == ["hook", "listener"]
    assert "catalog_swap_hook_failed" in [line["event"] for line in logs]
