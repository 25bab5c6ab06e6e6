"""Runtime settings: environment variables with the ``CTXFY_`` prefix, or a ``.env`` file."""

import tempfile
from enum import Enum
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Literal, Self, TypeAliasType, get_args, get_origin

import limits
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.generation import LlmMode, default_mode
from domain.generation_records import RecordPolicy
from domain.rate_limits import Bucket

type Environment = Literal["dev", "staging", "prod"]
type LogFormat = Literal["json", "console"]
type LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


MIN_STATE_KEY_LENGTH = 32
OFF = "off"  # a rate limit set to this is not enforced


def host_name(host: str) -> str:
    """``host`` without its port, lower case; IPv6 literals without brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address, with or without a port) is this machine."""
    name = host_name(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ip_address(name).is_loopback
    except ValueError:
        return False


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


class UnsafeSettings(ValueError):
    """A setting is not allowed in the chosen environment."""


class Settings(BaseSettings):
    """Everything Ctxfy can be told at start-up. Build explicitly in tests."""

    model_config = SettingsConfigDict(
        env_prefix="CTXFY_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        # Secrets (database URL, LLM key, state keys) must not be echoed by a refusal.
        hide_input_in_errors=True,
    )

    env: Environment = Field(
        "dev",
        description="The profile: picks the defaults marked per profile; prod also refuses "
        "unsafe settings at start.",
    )
    host: str = Field("127.0.0.1", description="Address `ctxfy serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `ctxfy serve` listens on.")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Worker processes `ctxfy serve` runs. prod refuses several on SQLite, or "
        "without CTXFY_MCP_STATE_KEYS.",
    )
    debug: bool = Field(
        False, description="FastAPI debug mode: tracebacks in responses. Refused in prod."
    )

    mcp_stateless: bool = Field(
        False,
        description="Stateless streamable HTTP with JSON responses (scale-out mode). "
        "Stateful with SSE responses otherwise; only stateful can sample the client's LLM.",
    )
    mcp_max_sessions: int = Field(
        1_000,
        ge=1,
        le=100_000,
        description="Stateful MCP sessions one process holds; a new one past it is refused "
        "with 503 (each costs about 60 KB). Also the most 2026-07-28 subscriptions/listen "
        "streams it keeps open.",
    )
    mcp_max_sessions_per_key: int = Field(
        16,
        ge=1,
        le=10_000,
        description="Stateful MCP sessions one key may hold in one process; opening one more "
        "is refused with 429 until one is closed (DELETE) or idles out.",
    )
    mcp_session_idle_seconds: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="A stateful MCP session with no request for this long is closed.",
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest REST request body; one byte more is 413, chunked bodies "
        "included, and the rest is not read. A compressed body is 415.",
    )
    mcp_max_body_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest /mcp request body; one byte more is a JSON-RPC error with 413.",
    )
    allowed_hosts: str = Field(
        "",
        description="Comma-separated Host names /mcp answers to (patterns like *.example.com; "
        "with or without :port). Empty: loopback names when bound to loopback, else any "
        "(refused in prod).",
    )
    allowed_origins: str = Field(
        "",
        description="Comma-separated browser origins (scheme://host[:port]) that may call "
        "/mcp. Empty: loopback pages for a loopback server, else pages of the Host itself.",
    )
    mcp_list_cache_seconds: int = Field(
        60,
        ge=0,
        le=86_400,
        description="How long 2026-07-28 clients may cache list results (ttlMs, private to "
        "the caller's key); 0 sends no caching hint.",
    )
    mcp_state_keys: SecretStr | None = Field(
        None,
        description="Comma-separated secrets (each at least 32 characters) that seal the "
        "request state of 2026-07-28 sampling round trips; the first seals, all unseal. Every "
        "worker and replica needs the same keys; unset, each process makes its own.",
    )
    prompts_dir: Path | None = Field(
        None, description="A directory of extra prompt files, loaded after the built-ins."
    )
    prompts_watch: bool = Field(
        False,
        description="Reload the catalog when a .yaml or .yml file in CTXFY_PROMPTS_DIR "
        "changes; each worker watches for itself. Needs CTXFY_PROMPTS_DIR.",
    )
    pid_file: Path | None = Field(
        None,
        description="Where `ctxfy serve` writes its process id, which `ctxfy prompts reload` "
        "signals. Default: ctxfy-<port>.pid in the system's temporary directory.",
    )

    database_url: SecretStr = Field(
        SecretStr("sqlite:///ctxfy.db"),
        description="Key and generation-record store: sqlite:///path (created and migrated at "
        "start; one worker, one replica) or postgresql://user:pass@host/db for several.",
    )
    auth_cache_ttl_seconds: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="How long a verified key is trusted without asking the store; a key "
        "revoked in another process stops working within this time.",
    )
    auth_cache_size: int = Field(
        10_000, ge=1, le=1_000_000, description="Verified keys kept in memory, per worker."
    )
    auth_max_failures: int = Field(
        10,
        ge=1,
        description="Failed authentications per (source address, key id) and window before "
        "that source is refused with 429 for that key id.",
    )
    auth_max_failures_per_source: int = Field(
        50,
        ge=1,
        description="Failed authentications per source address and window, over all key ids, "
        "before the address is refused with 429.",
    )
    auth_failure_window_seconds: float = Field(
        60.0, gt=0, description="The window in which failed authentications are counted."
    )
    auth_max_pending_verifications: int = Field(
        32,
        ge=0,
        le=10_000,
        description="argon2 verifications that may wait for one of the 2 slots; beyond "
        "that a first use of a key is answered 503 at once.",
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or CIDR networks of reverse proxies whose "
        "X-Forwarded-For names the client (the rightmost untrusted address); empty: none.",
    )
    key_default_lifetime_days: int = Field(
        90, ge=1, description="Lifetime of a new key when its creator names none."
    )
    key_max_lifetime_days: int = Field(
        365, ge=1, description="Longest lifetime a key may be given; at least the default."
    )
    argon2_time_cost: int = Field(
        2,
        ge=1,
        le=10,
        description="argon2id iterations of a key hash (OWASP minimum; prod refuses less). "
        "Keys are re-hashed on their next use when the argon2 settings change.",
    )
    argon2_memory_cost_kib: int = Field(
        19_456,
        ge=1024,
        le=1_048_576,
        description="argon2id memory per hash in KiB (OWASP minimum; prod refuses less).",
    )
    argon2_parallelism: int = Field(1, ge=1, le=16, description="argon2id lanes per hash.")
    usage_flush_seconds: float = Field(
        60.0, gt=0, description="How often last-used times are written to the key store."
    )

    rate_limit_read: str = Field(
        "600/minute",
        description="Requests per key that read (REST reads and previews, every MCP method "
        "but generation), in the notation of `limits` (`600/minute`, `10/5 seconds`); off: none.",
    )
    rate_limit_write: str = Field(
        "60/minute", description="Requests per key that change state (key management); off: none."
    )
    rate_limit_generate: str = Field(
        "10/minute",
        description="Generations per key (REST generate, MCP generate_* tools): the budget of "
        "LLM tokens a key can spend; off: none.",
    )
    generation_records: RecordPolicy | None = Field(
        None,
        description="What is kept of each generation: full (metadata, arguments and the "
        "document), metadata (who, which prompt version and LLM, tokens, latency, outcome), "
        "or off.",
    )
    generation_retention_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="Generation records older than this are deleted by a background purge.",
    )
    generation_purge_seconds: float = Field(
        3600.0,
        gt=0,
        description="How often the purge of old generation records runs.",
    )
    rate_limit_fail_open: bool | None = Field(
        None,
        description="When the rate-limit store (Redis) fails: true lets requests through, "
        "false answers 503 with Retry-After.",
    )
    redis_url: SecretStr | None = Field(
        None,
        description="redis:// or rediss:// URL of the store rate limits share across workers "
        "and replicas; unset, each process counts in its own memory.",
    )

    drain_seconds: float = Field(
        5.0,
        ge=0,
        le=300,
        description="After SIGTERM, how long to keep serving while /health/ready answers 503, "
        "so load balancers move traffic away before shutdown; 0 shuts down at once. Give the "
        "orchestrator a stop grace period longer than this plus "
        "CTXFY_SHUTDOWN_TIMEOUT_SECONDS.",
    )
    shutdown_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="After the drain, how long open requests (and event streams) get to "
        "finish before they are cut and the process exits.",
    )
    max_concurrent_requests: int = Field(
        256,
        ge=1,
        le=100_000,
        description="HTTP requests one worker serves at once; past it a request is answered "
        "503 with Retry-After at once. Probes and /metrics are exempt; an open MCP event "
        "stream holds no slot.",
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="How long a client has to send a request's line and headers, from the "
        "connection (or, kept alive, the request's first byte); then it is closed (408).",
    )
    max_header_bytes: int = Field(
        65_536,
        ge=4096,
        le=1024 * 1024,
        description="Largest request line plus headers; more is answered 431 and closed.",
    )
    keep_alive_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="How long an idle kept-alive connection stays open; behind a proxy that "
        "reuses connections, set it above the proxy's own idle timeout (65 behind a 60 s "
        "AWS ALB).",
    )

    llm_mode: LlmMode | None = Field(
        None,
        description="Which LLM generates documents: client (the MCP client's, through "
        "sampling), server (CTXFY_LLM_BASE_URL), or fallback (the client's when it can "
        "sample, else the server's). Default: fallback when a server LLM is configured, "
        "else client.",
    )
    llm_base_url: str | None = Field(
        None,
        description="OpenAI-compatible API root, e.g. https://api.openai.com/v1 or "
        "http://localhost:11434/v1 (Ollama); Ctxfy posts to {base}/chat/completions.",
    )
    llm_api_key: SecretStr | None = Field(
        None, description="Sent upstream as a Bearer token; callers' keys never are."
    )
    llm_model: str | None = Field(None, description="The model the server-side LLM uses.")
    llm_timeout_seconds: float = Field(
        120.0,
        gt=0,
        le=900,
        description="Budget of one server-side generation, retries included; "
        "past it the request fails with llm_timeout.",
    )
    llm_connect_timeout_seconds: float = Field(
        5.0, gt=0, le=5, description="Time to connect to the server-side LLM; at most 5."
    )
    llm_max_retries: int = Field(
        2,
        ge=0,
        le=5,
        description="Retries on connection errors, 429 (honouring Retry-After) and 5xx, with "
        "full-jitter backoff, within CTXFY_LLM_TIMEOUT_SECONDS.",
    )
    llm_max_concurrency: int = Field(
        8, ge=1, le=1024, description="Server-side generations in flight at once, per worker."
    )
    llm_breaker_failures: int = Field(
        5, ge=1, le=100, description="Consecutive upstream failures that open the breaker."
    )
    llm_breaker_cooldown_seconds: float = Field(
        30.0, gt=0, le=3600, description="How long an open breaker fails generations at once."
    )
    llm_sampling_timeout_seconds: float = Field(
        120.0,
        gt=0,
        le=900,
        description="How long to wait for the MCP client's LLM to answer a sampling request.",
    )

    docs_enabled: bool = Field(True, description="Serve /docs, /redoc and /openapi.json.")
    log_level: LogLevel = Field("INFO", description="The least severe level logged.")
    log_format: LogFormat = Field(
        "json", description="json: one object per line; console: for a terminal."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case_level(cls, level: object) -> object:
        return level.upper() if isinstance(level, str) else level

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: SecretStr) -> SecretStr:
        if not url.get_secret_value().startswith(("sqlite:///", "postgresql://")):
            raise ValueError("CTXFY_DATABASE_URL must start with sqlite:/// or postgresql://")
        return url

    @field_validator("rate_limit_read", "rate_limit_write", "rate_limit_generate")
    @classmethod
    def _rate_limit_notation(cls, text: str, info: ValidationInfo) -> str:
        text = text.strip()
        if text.lower() == OFF:
            return OFF
        variable = f"CTXFY_{(info.field_name or '').upper()}"
        try:
            items = limits.parse_many(text)
        except ValueError:
            items = []
        if len(items) != 1 or items[0].amount < 1:
            raise ValueError(
                f"{variable} must be one limit like 600/minute or 10/5 seconds, or off; "
                f"not {text!r}"
            )
        return text

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: SecretStr | None) -> SecretStr | None:
        if url is None or not url.get_secret_value().strip():
            return None
        if not url.get_secret_value().startswith(("redis://", "rediss://")):
            raise ValueError("CTXFY_REDIS_URL must start with redis:// or rediss://")
        return url

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, proxies: str) -> str:
        for item in _comma_list(proxies):
            try:
                ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"CTXFY_TRUSTED_PROXIES: {item!r} is not an IP address or CIDR network"
                ) from None
        return proxies

    @field_validator("llm_base_url")
    @classmethod
    def _http_base_url(cls, url: str | None) -> str | None:
        if not url:  # an empty variable (compose passes one through) means unset
            return None
        if not url.startswith(("http://", "https://")):
            raise ValueError("CTXFY_LLM_BASE_URL must start with http:// or https://")
        return url

    @field_validator("mcp_state_keys")
    @classmethod
    def _long_state_keys(cls, keys: SecretStr | None) -> SecretStr | None:
        if keys is None or not keys.get_secret_value().strip():
            return None
        if any(
            len(key.encode()) < MIN_STATE_KEY_LENGTH for key in _comma_list(keys.get_secret_value())
        ):
            raise ValueError(
                f"each CTXFY_MCP_STATE_KEYS key must be at least {MIN_STATE_KEY_LENGTH} bytes"
            )
        return keys

    @property
    def rate_limits(self) -> dict[Bucket, str | None]:
        """Each bucket's limit in `limits` notation; ``None`` where it is off."""
        configured = {
            Bucket.READ: self.rate_limit_read,
            Bucket.WRITE: self.rate_limit_write,
            Bucket.GENERATE: self.rate_limit_generate,
        }
        return {bucket: None if text == OFF else text for bucket, text in configured.items()}

    @property
    def record_policy(self) -> RecordPolicy:
        """``generation_records``, or its default for the environment."""
        if self.generation_records is not None:
            return self.generation_records
        return RecordPolicy.FULL if self.env == "dev" else RecordPolicy.METADATA

    @property
    def rate_limit_fails_open(self) -> bool:
        """``rate_limit_fail_open``, or its default for the environment."""
        if self.rate_limit_fail_open is not None:
            return self.rate_limit_fail_open
        return self.env == "dev"

    @property
    def host_allowlist(self) -> tuple[str, ...]:
        """``allowed_hosts`` as a list."""
        return _comma_list(self.allowed_hosts)

    @property
    def trusted_proxy_list(self) -> tuple[str, ...]:
        """The trusted proxies, parsed from ``CTXFY_TRUSTED_PROXIES``."""
        return _comma_list(self.trusted_proxies)

    @property
    def origin_allowlist(self) -> tuple[str, ...]:
        """``allowed_origins`` as a list."""
        return _comma_list(self.allowed_origins)

    @property
    def state_keys(self) -> tuple[str, ...]:
        """The request-state keys, first sealing; empty when each process makes its own."""
        keys = self.mcp_state_keys
        return _comma_list(keys.get_secret_value()) if keys is not None else ()

    @property
    def pid_path(self) -> Path:
        """``pid_file``, or ``ctxfy-<port>.pid`` in the system's temporary directory."""
        return self.pid_file or Path(tempfile.gettempdir()) / f"ctxfy-{self.port}.pid"

    @property
    def server_llm_configured(self) -> bool:
        """Whether a server-side LLM is set up (base URL and model)."""
        return self.llm_base_url is not None

    @property
    def effective_llm_mode(self) -> LlmMode:
        """``llm_mode``, or its default for the configured LLMs."""
        return self.llm_mode or default_mode(server_configured=self.server_llm_configured)

    @model_validator(mode="after")
    def _llm_is_complete(self) -> Self:
        if self.llm_base_url is not None and not (self.llm_model or "").strip():
            raise ValueError("CTXFY_LLM_BASE_URL is set, so CTXFY_LLM_MODEL must name a model")
        if self.llm_mode is LlmMode.SERVER and not self.server_llm_configured:
            raise ValueError("CTXFY_LLM_MODE=server needs CTXFY_LLM_BASE_URL and CTXFY_LLM_MODEL")
        return self

    @model_validator(mode="after")
    def _watch_has_a_directory(self) -> Self:
        if self.prompts_watch and self.prompts_dir is None:
            raise ValueError(
                "CTXFY_PROMPTS_WATCH=true needs CTXFY_PROMPTS_DIR: the built-in prompts "
                "change only with an upgrade, so there is nothing to watch"
            )
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_in_prod(self) -> Self:
        if self.key_default_lifetime_days > self.key_max_lifetime_days:
            raise UnsafeSettings(
                "CTXFY_KEY_DEFAULT_LIFETIME_DAYS must not exceed CTXFY_KEY_MAX_LIFETIME_DAYS"
            )
        if self.env != "prod":
            return self
        if self.debug:
            raise UnsafeSettings(
                "CTXFY_DEBUG=true is refused when CTXFY_ENV=prod: debug mode "
                "returns tracebacks to clients"
            )
        if not self.host_allowlist and not is_loopback(self.host):
            raise UnsafeSettings(
                f"CTXFY_ALLOWED_HOSTS must name the hosts clients use when CTXFY_ENV=prod "
                f"binds {self.host}: without it /mcp cannot tell DNS-rebinding requests apart"
            )
        if self.workers > 1 and self.database_url.get_secret_value().startswith("sqlite:"):
            raise UnsafeSettings(
                "CTXFY_DATABASE_URL must be postgresql://… when CTXFY_ENV=prod runs several "
                "workers: SQLite takes one writer at a time, so workers would wait on each "
                "other's locks (and replicas cannot share its file at all)"
            )
        if self.workers > 1 and self.mcp_state_keys is None:
            raise UnsafeSettings(
                "CTXFY_MCP_STATE_KEYS must be set when CTXFY_ENV=prod runs several workers: "
                "a 2026-07-28 sampling round trip may come back to another worker"
            )
        if self.argon2_time_cost < 2 or self.argon2_memory_cost_kib < 19_456:
            raise UnsafeSettings(
                "argon2 parameters below OWASP's minimum (time cost 2, memory 19456 KiB) "
                "are refused when CTXFY_ENV=prod"
            )
        return self


# Settings whose default depends on CTXFY_ENV, and the property that resolves it.
PROFILE_DEFAULTS = {
    "generation_records": "record_policy",
    "rate_limit_fail_open": "rate_limit_fails_open",
}


def _shown(value: object) -> str:
    """A default as an operator would write it in the environment."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None or value == "":
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, Enum):
        value = value.value
    return f"`{value}`"


def _allowed(info: FieldInfo) -> str:
    """A field's numeric limits (``1–64``, ``> 0``) or its choices; empty when it has none."""
    choices = ("true", "false") if info.annotation is bool else _choices(info.annotation)
    if choices:
        return ", ".join(f"`{choice}`" for choice in choices)
    bounds = {
        attribute: getattr(item, attribute)
        for item in info.metadata
        for attribute in ("ge", "gt", "le", "lt")
        if getattr(item, attribute, None) is not None
    }
    if "ge" in bounds and "le" in bounds:
        return f"{bounds['ge']}–{bounds['le']}"
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    return ", ".join(f"{signs[attribute]} {bound}" for attribute, bound in bounds.items())


def _choices(annotation: object) -> tuple[str, ...]:
    """The values a Literal or Enum field (optional or not) may take."""
    if isinstance(annotation, TypeAliasType):
        annotation = annotation.__value__
    if get_origin(annotation) is Literal:
        return tuple(str(value) for value in get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return tuple(str(member.value) for member in annotation)
    for member in get_args(annotation):  # X | None
        if member is not type(None) and (choices := _choices(member)):
            return choices
    return ()


def _default_cell(name: str, default: object) -> str:
    prop = PROFILE_DEFAULTS.get(name)
    if prop is None:
        return _shown(default)
    by_value: dict[str, list[str]] = {}
    for env in get_args(Environment.__value__):
        effective = getattr(Settings.model_construct(env=env), prop)
        by_value.setdefault(_shown(effective), []).append(env)
    return "; ".join(f"{shown} in {', '.join(envs)}" for shown, envs in by_value.items())


def reference_table() -> str:
    """Every setting as a Markdown table (variable, default, allowed values, meaning).

    The README carries this table; a test fails when the two differ.
    """
    rows = ["| Variable | Default | Allowed | Meaning |", "|---|---|---|---|"]
    for name, info in Settings.model_fields.items():
        meaning = (info.description or "").replace("|", "\\|")
        default = _default_cell(name, info.default)
        rows.append(f"| `CTXFY_{name.upper()}` | {default} | {_allowed(info)} | {meaning} |")
    return "\n".join(rows) + "\n"
