"""Builds the adapters and services ``create_app`` and the CLI share, from settings."""

from dataclasses import dataclass
from datetime import timedelta

from app.auth.authenticator import Authenticator, AuthPolicy
from app.generation import Generator
from app.keys import KeyLifetimes, KeyService
from app.settings import Settings
from domain.ports import KeyStore
from infrastructure.hashing import Argon2KeyHasher, Argon2Parameters
from infrastructure.keystore.sql import SqlKeyStore
from infrastructure.llm.breaker import CircuitBreaker
from infrastructure.llm.openai_compatible import OpenAICompatibleLlm
from infrastructure.metrics import Metrics


@dataclass(frozen=True, slots=True)
class KeyParts:
    """The key store and everything that authenticates against it."""

    store: KeyStore
    authenticator: Authenticator
    keys: KeyService


def build_key_parts(settings: Settings) -> KeyParts:
    """Key store, hasher, authenticator and key service, wired together (not started)."""
    store = SqlKeyStore(settings.database_url.get_secret_value())
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
            failure_window_seconds=settings.auth_failure_window_seconds,
        ),
    )
    keys = KeyService(
        store,
        hasher,
        KeyLifetimes(
            default=timedelta(days=settings.key_default_lifetime_days),
            maximum=timedelta(days=settings.key_max_lifetime_days),
        ),
        authenticator=authenticator,
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


def build_generator(
    settings: Settings, server: OpenAICompatibleLlm | None, metrics: Metrics
) -> Generator:
    """The generation service under the configured ``CTXFY_LLM_MODE``."""
    return Generator(
        mode=settings.effective_llm_mode,
        server=server,
        server_model=settings.llm_model,
        metrics=metrics,
    )
