"""The one place parts are built: catalog, stores, LLMs, services, MCP server, metrics.

``bootstrap(settings)`` builds everything the HTTP application serves; ``create_app`` only
assembles HTTP around it. Tests and benchmarks pass overrides (a fake key store, a scripted
LLM, a manual clock) instead of replacing parts after construction.
"""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import TypedDict, Unpack

import structlog

from app.mcp.generations import GenerationRecordTemplate
from app.mcp.middleware import McpObservabilityMiddleware
from app.mcp.notifications import CatalogNotifier
from app.mcp.server import (
    build_mcp_server,
    mcp_http_app,
    request_state_security,
    transport_running,
)
from app.mcp.sessions import McpSessions
from app.mcp.tools import generation_tools
from app.services.authenticator import Authenticator, AuthPolicy
from app.services.catalog import LiveCatalog
from app.services.catalog_watch import CatalogWatcher
from app.services.generation import DocumentGenerator, LlmLabels
from app.services.generation_records import GenerationRecorder
from app.services.health import HealthService, Lifecycle, SharedChecks
from app.services.keys import KeyLifetimes, KeyService
from app.settings import Settings
from app.state import AppState
from domain.generation import LlmMode
from domain.llm import LlmGateway
from domain.ports import GenerationRecords, KeyStore
from infrastructure.catalog.catalog import PromptCatalog
from infrastructure.catalog.loader import load_catalog
from infrastructure.catalog.watch import prompt_file_changes
from infrastructure.hashing import Argon2KeyHasher, Argon2Parameters
from infrastructure.keystore.records import SqlGenerationRecords
from infrastructure.keystore.sql import SqlKeyStore
from infrastructure.llm import client_sampling, openai_compatible
from infrastructure.llm.breaker import CircuitBreaker
from infrastructure.llm.openai_compatible import OpenAICompatibleLlm
from infrastructure.metrics import Metrics
from infrastructure.process.reload_signals import sibling_reloader
from infrastructure.rate_limit import KeyRateLimiter, memory_storage, redis_storage

logger = structlog.get_logger(__name__)


class Overrides(TypedDict, total=False):
    """Parts a caller supplies instead of the ones settings describe."""

    catalog: PromptCatalog
    key_store: KeyStore
    generation_records: GenerationRecords  # by default, the SQL key store's database
    server_llm: LlmGateway  # stands in for the configured server-side LLM
    metrics: Metrics
    clock: Callable[[], float]  # monotonic seconds: caches, windows, health checks
    now: Callable[[], datetime]  # wall-clock time: key lifetimes, timestamps


@dataclass(frozen=True, slots=True)
class KeyParts:
    """The key store and everything that authenticates against it."""

    store: KeyStore
    authenticator: Authenticator
    keys: KeyService


def package_version() -> str:
    """The installed version of Ctxfy."""
    try:
        return version("ctxfy")
    except PackageNotFoundError:  # pragma: no cover — only when run from an uninstalled tree
        return "0.0.0"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build_keys(
    settings: Settings,
    metrics: Metrics,
    *,
    store: KeyStore | None = None,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = _utc_now,
) -> KeyParts:
    """Key store, hasher, authenticator and key service, wired together (not started)."""
    store = store if store is not None else SqlKeyStore(settings.database_url.get_secret_value())
    hasher = Argon2KeyHasher(
        Argon2Parameters(
            time_cost=settings.argon2_time_cost,
            memory_cost_kib=settings.argon2_memory_cost_kib,
            parallelism=settings.argon2_parallelism,
        )
    )
    authenticator = Authenticator(
        store,
        hasher,
        AuthPolicy(
            cache_ttl_seconds=settings.auth_cache_ttl_seconds,
            cache_size=settings.auth_cache_size,
            max_failures=settings.auth_max_failures,
            max_failures_per_source=settings.auth_max_failures_per_source,
            failure_window_seconds=settings.auth_failure_window_seconds,
            max_pending_verifications=settings.auth_max_pending_verifications,
        ),
        metrics=metrics,
        now=now,
        clock=clock,
    )
    keys = KeyService(
        store,
        hasher,
        KeyLifetimes(
            default=timedelta(days=settings.key_default_lifetime_days),
            maximum=timedelta(days=settings.key_max_lifetime_days),
        ),
        authenticator=authenticator,
        now=now,
    )
    return KeyParts(store=store, authenticator=authenticator, keys=keys)


def build_server_llm(settings: Settings) -> OpenAICompatibleLlm | None:
    """The server-side LLM, if one is configured (no connection is made yet)."""
    if settings.llm_base_url is None or settings.llm_model is None:
        return None
    api_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return OpenAICompatibleLlm(
        settings.llm_base_url,
        api_key,
        settings.llm_model,
        connect_timeout=settings.llm_connect_timeout_seconds,
        read_timeout=settings.llm_timeout_seconds,
        total_timeout=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
        max_concurrency=settings.llm_max_concurrency,
        breaker=CircuitBreaker(
            failure_threshold=settings.llm_breaker_failures,
            cooldown_seconds=settings.llm_breaker_cooldown_seconds,
        ),
    )


def build_rate_limiter(
    settings: Settings,
    metrics: Metrics,
    on_close: list[Callable[[], Awaitable[None]]],
    clock: Callable[[], float] = time.monotonic,
) -> KeyRateLimiter:
    """The per-key rate limits, in Redis when ``CTXFY_REDIS_URL`` is set (not connected yet)."""
    if settings.redis_url is not None:
        storage, close = redis_storage(settings.redis_url.get_secret_value())
        on_close.append(close)
    else:
        if settings.workers > 1:
            logger.warning(
                "rate_limits_per_worker",
                detail="without CTXFY_REDIS_URL each worker counts alone, so a key gets "
                "each limit once per worker",
            )
        storage = memory_storage()
    return KeyRateLimiter(
        settings.rate_limits,
        storage,
        fail_open=settings.rate_limit_fails_open,
        metrics=metrics,
        clock=clock,
    )


def records_of(store: KeyStore) -> GenerationRecords | None:
    """Generation records in the key store's database; none for a store without one."""
    return SqlGenerationRecords(store) if isinstance(store, SqlKeyStore) else None


def bootstrap(settings: Settings, **overrides: Unpack[Overrides]) -> AppState:
    """Every part of the application, built from ``settings`` (nothing started yet).

    Raises:
        CatalogError: a prompt file is invalid; the message names file, prompt and field.
    """
    app_version = package_version()
    clock = overrides.get("clock", time.monotonic)
    now = overrides.get("now", _utc_now)
    prompts_dir = settings.prompts_dir
    metrics = overrides.get("metrics") or Metrics(version=app_version)
    live = LiveCatalog(
        overrides.get("catalog") or load_catalog(prompts_dir),
        load=lambda: load_catalog(prompts_dir),
        metrics=metrics,
        now=now,
    )

    on_close: list[Callable[[], Awaitable[None]]] = []
    server_llm: LlmGateway | None = overrides.get("server_llm")
    if server_llm is None:
        configured = build_server_llm(settings)
        if configured is not None:
            on_close.append(configured.close)
        server_llm = configured
    keys = build_keys(settings, metrics, store=overrides.get("key_store"), clock=clock, now=now)
    recorder = GenerationRecorder(
        overrides.get("generation_records") or records_of(keys.store),
        policy=settings.record_policy,
        metrics=metrics,
        now=now,
    )
    generator = DocumentGenerator(
        mode=settings.effective_llm_mode,
        server=server_llm,
        labels=LlmLabels(
            server_provider=openai_compatible.PROVIDER,
            server_model=settings.llm_model or "unknown",
            client_provider=client_sampling.PROVIDER,
        ),
        metrics=metrics,
        recorder=recorder,
    )

    # Metrics first in FastMCP's chain, so it times the rest and counts what later
    # middleware refuses. Prompts and tools follow the live catalog; a reload that changes
    # it is told to connected clients.
    notifier = CatalogNotifier(max_listeners=settings.mcp_max_sessions)
    mcp = build_mcp_server(
        live,
        version=app_version,
        middleware=[McpObservabilityMiddleware(metrics, live)],
        state_security=request_state_security(
            settings.state_keys, ttl=settings.llm_sampling_timeout_seconds
        ),
        list_cache_seconds=settings.mcp_list_cache_seconds,
        tools=lambda catalog: generation_tools(
            catalog,
            generator,
            stateless=settings.mcp_stateless,
            sampling_timeout=settings.llm_sampling_timeout_seconds,
        ),
        # Readable whatever the policy: records written before it changed stay readable.
        templates=[GenerationRecordTemplate.serving(recorder.records)]
        if recorder.records is not None
        else [],
        notifier=notifier,
    )
    live.on_change(notifier.catalog_changed)
    mcp_app = mcp_http_app(
        mcp, stateless=settings.mcp_stateless, idle_seconds=settings.mcp_session_idle_seconds
    )
    sessions = McpSessions(
        mcp_app, stateless=settings.mcp_stateless, max_sessions=settings.mcp_max_sessions
    )

    # A key revoked (or rotated without grace) here loses its sessions and streams at once.
    keys.keys.on_key_ended(lambda key_id: sessions.close_key(key_id, reason="key_ended"))
    rate_limiter = build_rate_limiter(settings, metrics, on_close, clock)
    lifecycle = Lifecycle()
    started_at = now()
    health = HealthService(
        lifecycle=lifecycle,
        key_store=keys.store,
        catalog=live.health,
        transport_running=lambda: transport_running(mcp_app),
        version=app_version,
        started_at=started_at,
        now=now,
        checks=SharedChecks(clock=clock),
    )
    return AppState(
        version=app_version,
        started_at=started_at,
        catalog=live,
        mcp=mcp,
        mcp_app=mcp_app,
        sessions=sessions,
        session_sweep_seconds=max(1.0, settings.auth_cache_ttl_seconds),
        key_store=keys.store,
        authenticator=keys.authenticator,
        keys=keys.keys,
        metrics=metrics,
        rate_limiter=rate_limiter,
        generator=generator,
        health=health,
        lifecycle=lifecycle,
        usage_flush_seconds=settings.usage_flush_seconds,
        client_sampling=settings.effective_llm_mode is not LlmMode.SERVER,
        reload_siblings=sibling_reloader(),
        recorder=recorder,
        record_retention=timedelta(days=settings.generation_retention_days),
        record_purge_seconds=settings.generation_purge_seconds,
        catalog_watcher=(
            CatalogWatcher(prompts_dir, live, changes=prompt_file_changes)
            if settings.prompts_watch and prompts_dir is not None
            else None
        ),
        on_close=tuple(on_close),
    )
