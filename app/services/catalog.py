"""The catalog being served, and reloading it: validate the whole new one, then swap.

``LiveCatalog.current`` is what every request reads, once, at its start; a request keeps
the entry it resolved even if a reload lands while it runs, since entries are immutable. A
reload loads and checks every file off the event loop, and only a catalog that loaded
completely replaces the one serving: a broken file is reported (the returned report, a log
line, ``ctxfy_catalog_reload_total``, ``/health``) and the old catalog goes on serving.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from time import perf_counter

import anyio
import structlog

from domain.errors import CatalogError
from infrastructure.catalog.catalog import PromptCatalog
from infrastructure.metrics import Metrics

logger = structlog.get_logger(__name__)


class ReloadTrigger(StrEnum):
    """What asked for a reload (a metric label: a closed set)."""

    API = "api"  # POST /v1/catalog/reload
    SIGNAL = "signal"  # SIGHUP, which `ctxfy prompts reload` sends
    WATCH = "watch"  # the file watcher (CTXFY_PROMPTS_WATCH)


class ReloadOutcome(StrEnum):
    """How a reload ended (a metric label: a closed set)."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"
    FAILED = "failed"  # the old catalog is still serving


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogChange:
    """What a reload changed, by pinned reference (``name@version``)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    # Some prompt's current version changed, so unpinned requests now get another one.
    current_changed: tuple[str, ...] = ()
    # The generation tools changed: one appeared, went, or now serves another version.
    tools_changed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadReport:
    """One reload, as the API answers it, the log writes it and ``/health`` shows it."""

    trigger: ReloadTrigger
    outcome: ReloadOutcome
    at: datetime
    duration_ms: float
    digest: str  # of the catalog serving after the reload (the old one when it failed)
    prompts: int
    versions: int
    change: CatalogChange
    error: str | None = None


type ChangeListener = Callable[[PromptCatalog, PromptCatalog, CatalogChange], Awaitable[None]]


def compare(old: PromptCatalog, new: PromptCatalog) -> CatalogChange:
    """What differs between two catalogs."""
    before = {e.definition.reference: e.digest for e in old.entries()}
    after = {e.definition.reference: e.digest for e in new.entries()}
    # A version's content cannot change under the same number without being seen: a file
    # edited in place counts as the version removed and added again.
    edited = {ref for ref in before.keys() & after.keys() if before[ref] != after[ref]}
    added = tuple(sorted((after.keys() - before.keys()) | edited))
    removed = tuple(sorted((before.keys() - after.keys()) | edited))
    old_current = {e.name: (e.version, e.digest) for e in old}
    new_current = {e.name: (e.version, e.digest) for e in new}
    current_changed = tuple(
        sorted(
            name
            for name in old_current.keys() | new_current.keys()
            if old_current.get(name) != new_current.get(name)
        )
    )
    generating_before = {e.name: e.digest for e in old if e.definition.generation is not None}
    generating_after = {e.name: e.digest for e in new if e.definition.generation is not None}
    return CatalogChange(
        added=added,
        removed=removed,
        current_changed=current_changed,
        tools_changed=generating_before != generating_after,
    )


class LiveCatalog:
    """The catalog serving now, replaced whole by a reload that validated."""

    def __init__(
        self,
        catalog: PromptCatalog,
        *,
        load: Callable[[], PromptCatalog],
        metrics: Metrics,
        now: Callable[[], datetime],
    ) -> None:
        self._current = catalog
        self._load = load
        self._metrics = metrics
        self._now = now
        self._lock = anyio.Lock()
        self._listeners: list[ChangeListener] = []
        self._swap_hooks: list[Callable[[PromptCatalog], None]] = []
        self.last_reload: ReloadReport | None = None
        self.last_failure: ReloadReport | None = None
        metrics.prompts_loaded(len(catalog), catalog.version_count)

    @property
    def current(self) -> PromptCatalog:
        """The catalog to serve this request from; read it once per request."""
        return self._current

    def on_swap(self, hook: Callable[[PromptCatalog], None]) -> None:
        """Call ``hook(new)`` in the same step as each swap, before any listener is awaited:
        for what must serve the new catalog at once (routes, MCP components). One that fails
        is logged; the rest still run."""
        self._swap_hooks.append(hook)

    def on_change(self, listener: ChangeListener) -> None:
        """Call ``listener(old, new, change)`` after each reload that changed the catalog.

        Listeners run in the order added, after the swap; one that fails is logged and the
        rest still run (the new catalog is serving by then).
        """
        self._listeners.append(listener)

    async def reload(self, trigger: ReloadTrigger) -> ReloadReport:
        """Load every prompt file again and serve the result if, and only if, it is valid.

        Reloads run one at a time; one asked for while another runs waits, then loads again
        (files may have changed since the first began).
        """
        async with self._lock:
            started = perf_counter()
            old = self._current
            try:
                new = await anyio.to_thread.run_sync(self._load)
            except CatalogError as exc:
                return self._failed(trigger, old, started, str(exc))
            except Exception as exc:  # an unforeseen loader fault must not stop serving
                logger.exception("catalog_reload_crashed", trigger=trigger.value)
                return self._failed(trigger, old, started, f"{type(exc).__name__}: {exc}")
            if new.digest == old.digest:
                report = self._report(trigger, ReloadOutcome.UNCHANGED, old, started)
                logger.info("catalog_reload_unchanged", trigger=trigger.value, digest=old.digest)
                return self._record(report)
            change = compare(old, new)
            self._current = new
            for hook in self._swap_hooks:
                try:
                    hook(new)
                except Exception:  # the swap stands; the rest still follow it
                    logger.exception("catalog_swap_hook_failed")
            self._metrics.prompts_loaded(len(new), new.version_count)
            report = self._report(trigger, ReloadOutcome.CHANGED, new, started, change)
            logger.info(
                "catalog_reloaded",
                trigger=trigger.value,
                digest=new.digest,
                prompts=len(new),
                versions=new.version_count,
                added=list(change.added),
                removed=list(change.removed),
                current_changed=list(change.current_changed),
            )
            for listener in self._listeners:
                try:
                    await listener(old, new, change)
                except Exception:  # the swap stands; the rest still hear of it
                    logger.exception("catalog_change_listener_failed")
            return self._record(report)

    def _failed(
        self, trigger: ReloadTrigger, serving: PromptCatalog, started: float, error: str
    ) -> ReloadReport:
        report = self._report(trigger, ReloadOutcome.FAILED, serving, started, error=error)
        logger.error(
            "catalog_reload_failed", trigger=trigger.value, error=error, kept=serving.digest
        )
        self.last_failure = report
        return self._record(report)

    def _report(
        self,
        trigger: ReloadTrigger,
        outcome: ReloadOutcome,
        serving: PromptCatalog,
        started: float,
        change: CatalogChange | None = None,
        *,
        error: str | None = None,
    ) -> ReloadReport:
        return ReloadReport(
            trigger=trigger,
            outcome=outcome,
            at=self._now(),
            duration_ms=round((perf_counter() - started) * 1000, 1),
            digest=serving.digest,
            prompts=len(serving),
            versions=serving.version_count,
            change=change or CatalogChange(),
            error=error,
        )

    def _record(self, report: ReloadReport) -> ReloadReport:
        self.last_reload = report
        self._metrics.catalog_reloaded(report.trigger.value, report.outcome.value)
        return report

    def health(self) -> tuple[bool, str]:
        """``/health``'s catalog check: serving prompts, and how the last reload went."""
        catalog = self._current
        detail = f"{len(catalog)} prompts, {catalog.version_count} versions loaded"
        last = self.last_reload
        if last is not None and last.outcome is ReloadOutcome.FAILED:
            detail += (
                f"; the last reload ({last.trigger.value}, {last.at.isoformat()}) failed and "
                f"the previous catalog is serving: {last.error}"
            )
        elif last is not None:
            detail += f"; last reloaded {last.at.isoformat()} ({last.outcome.value})"
        return len(catalog) > 0, detail
