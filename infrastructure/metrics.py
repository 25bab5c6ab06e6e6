"""Prometheus metrics: Ctxfy's own series (the HTTP series come from the instrumentator's
middleware, which ``app/http/http_metrics.py`` adds to the same registry).

The seeds' ``MetricsCollectorPort`` is this module's ``Metrics``; it has one implementation,
so it is a class, not a port. Every label has a small, closed set of values: never user
ids, key ids, raw paths or client-chosen names.

Several workers: ``prometheus_client`` decides when it is imported whether values live in
memory or in per-process files under ``PROMETHEUS_MULTIPROC_DIR``. With that variable set,
``ctxfy serve`` calls ``prepare_multiprocess_dir()`` once, before workers start, and
``/metrics`` sums every process's files, whichever worker answers the scrape.
"""

import os
from pathlib import Path
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

from domain.rate_limits import Bucket

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# cancelled: the caller went away (or was stopped) before the LLM answered.
type Outcome = Literal["ok", "error", "cancelled"]
type Surface = Literal["rest", "mcp"]
# input_required: the first round of a 2026-07-28 call that asks the client for input.
type McpOutcome = Literal["ok", "error", "input_required"]

# 0.2: the p95 objective is a bucket boundary, so its alert is not interpolated across it.
MCP_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
LLM_BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)


def multiprocess_dir() -> Path | None:
    """Where worker processes keep their values, when several share one ``/metrics``."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def prepare_multiprocess_dir() -> Path | None:
    """Create the multiprocess directory and delete the value files of earlier runs.

    Call once, in the parent, before any worker starts: stale files would be summed into
    every scrape, and a worker that wiped the directory would erase its siblings' counts.
    Only ``*.db`` files are removed. Returns the directory, or ``None`` in single-process mode.
    """
    directory = multiprocess_dir()
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    return directory


class Metrics:
    """Every Ctxfy series, in a registry of its own; build one per application.

    A registry per instance lets tests build many apps in one process (one registry
    refuses a second series of the same name). Label values come from closed sets.
    """

    def __init__(self, *, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = multiprocess_dir()
        registry = self.registry
        if self.multiprocess_dir is None:
            # Per-process figures; they mean nothing summed across workers.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        else:
            # Served without `ctxfy serve` (a bare uvicorn): values need the directory.
            self.multiprocess_dir.mkdir(parents=True, exist_ok=True)
        self._mcp_requests = Counter(
            "ctxfy_mcp_requests",
            "MCP requests by method, prompt or tool name, prompt version, and outcome.",
            ["method", "name", "version", "outcome"],
            registry=registry,
        )
        self._mcp_duration = Histogram(
            "ctxfy_mcp_request_duration_seconds",
            "Time to answer an MCP request, by method.",
            ["method"],
            buckets=MCP_BUCKETS,
            registry=registry,
        )
        self._llm_requests = Counter(
            "ctxfy_llm_requests",
            "LLM generation requests by provider, model and outcome.",
            ["provider", "model", "outcome"],
            registry=registry,
        )
        self._llm_duration = Histogram(
            "ctxfy_llm_request_duration_seconds",
            "Time an LLM took to answer, by provider and model.",
            ["provider", "model"],
            buckets=LLM_BUCKETS,
            registry=registry,
        )
        self._llm_tokens = Counter(
            "ctxfy_llm_tokens",
            "LLM tokens by provider, model and direction (input or output).",
            ["provider", "model", "direction"],
            registry=registry,
        )
        self._auth_failures = Counter(
            "ctxfy_auth_failures",
            "Refused credentials by reason (missing, malformed, unknown, …).",
            ["reason"],
            registry=registry,
        )
        self._verifications = Counter(
            "ctxfy_auth_verifications",
            "argon2 verifications of presented keys (first uses and wrong secrets).",
            registry=registry,
        )
        self._rate_limited = Counter(
            "ctxfy_rate_limited",
            "Requests refused by a rate limit, by bucket (read, write, generate).",
            ["scope"],
            registry=registry,
        )
        for bucket in Bucket:
            self._rate_limited.labels(bucket.value)  # every bucket reports, 0 until it refuses
        self._rate_limit_errors = Counter(
            "ctxfy_rate_limit_errors",
            "Requests decided without the rate-limit store (it failed), by the fail mode.",
            registry=registry,
        )
        self._overload_rejected = Counter(
            "ctxfy_overload_rejected",
            "Requests refused because the worker had its limit of requests in flight.",
            ["surface"],
            registry=registry,
        )
        self._mcp_sessions_refused = Counter(
            "ctxfy_mcp_sessions_refused",
            "MCP sessions refused because the key held CTXFY_MCP_MAX_SESSIONS_PER_KEY.",
            registry=registry,
        )
        # livemax: workers load the same catalog; a dead worker's value drops out.
        self._prompts_loaded = Gauge(
            "ctxfy_prompts_loaded",
            "Prompts in the loaded catalog.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._prompt_versions_loaded = Gauge(
            "ctxfy_prompt_versions_loaded",
            "Prompt versions in the loaded catalog, every version of every prompt.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._catalog_reloads = Counter(
            "ctxfy_catalog_reload",
            "Catalog reloads by trigger (api, signal, watch) and outcome (changed, "
            "unchanged, failed: the old catalog kept serving).",
            ["trigger", "outcome"],
            registry=registry,
        )
        self._generation_records = Counter(
            "ctxfy_generation_records",
            "Generation records by outcome: written, failed (the store failed or was slow; "
            "the document was still returned), skipped (CTXFY_GENERATION_RECORDS=off).",
            ["outcome"],
            registry=registry,
        )
        build_info = Gauge(
            "ctxfy_build_info",
            "Always 1; the running version is the label.",
            ["version"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        build_info.labels(version).set(1)

    def auth_failed(self, reason: str) -> None:
        """Count a refused credential; ``reason`` is a ``FailureReason`` value."""
        self._auth_failures.labels(reason).inc()

    def key_verified(self) -> None:
        """Count one argon2 verification (cache hits are never counted)."""
        self._verifications.inc()

    def rate_limited(self, scope: Bucket) -> None:
        """Count a request refused by the rate limit of bucket ``scope``."""
        self._rate_limited.labels(scope.value).inc()

    def rate_limit_error(self) -> None:
        """Count a request the rate-limit store could not decide."""
        self._rate_limit_errors.inc()

    def mcp_session_refused(self) -> None:
        """Count an MCP session refused at its key's session cap."""
        self._mcp_sessions_refused.inc()

    def overload_rejected(self, surface: Surface) -> None:
        """Count a request refused at the concurrency bound, by ``rest`` or ``mcp``."""
        self._overload_rejected.labels(surface).inc()

    def generation_recorded(self, outcome: str) -> None:
        """Count a generation record: ``written``, ``failed`` or ``skipped``."""
        self._generation_records.labels(outcome).inc()

    def catalog_reloaded(self, trigger: str, outcome: str) -> None:
        """Count a catalog reload; both labels come from closed sets."""
        self._catalog_reloads.labels(trigger, outcome).inc()

    def mcp_request(
        self, method: str, name: str, outcome: McpOutcome, seconds: float, version: str = ""
    ) -> None:
        """Record one MCP request; ``name`` and ``version`` must be bounded already
        (``McpMetricsMiddleware``): a prompt's or tool's, or empty."""
        self._mcp_requests.labels(method, name, version, outcome).inc()
        self._mcp_duration.labels(method).observe(seconds)

    def llm_request(
        self,
        provider: str,
        model: str,
        outcome: Outcome,
        seconds: float,
        input_tokens: int | None,
        output_tokens: int | None,
    ) -> None:
        """Record one LLM call; ``provider`` and ``model`` come from settings, not clients.

        Token counts the provider did not report (MCP sampling never does) are not counted.
        """
        self._llm_requests.labels(provider, model, outcome).inc()
        self._llm_duration.labels(provider, model).observe(seconds)
        if input_tokens is not None:
            self._llm_tokens.labels(provider, model, "input").inc(input_tokens)
        if output_tokens is not None:
            self._llm_tokens.labels(provider, model, "output").inc(output_tokens)

    def prompts_loaded(self, count: int, versions: int | None = None) -> None:
        """Set how many prompts, and prompt versions, the catalog holds."""
        self._prompts_loaded.set(count)
        self._prompt_versions_loaded.set(count if versions is None else versions)

    def exposition(self) -> bytes:
        """The text format of every series: this process's, or all workers' summed."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        # A fresh registry per scrape, as prometheus_client documents for multiprocess.
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]  # unannotated upstream
            combined, path=str(self.multiprocess_dir)
        )
        return generate_latest(combined)

    def close(self) -> None:
        """Drop this process's live gauges (``livemax``) from the multiprocess directory.

        Call when the application shuts down; counters stay, so totals never go backwards.
        """
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]  # unannotated upstream
                os.getpid(), str(self.multiprocess_dir)
            )
