"""Runtime settings: environment variables with the ``CTXFY_`` prefix, or a ``.env`` file."""

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

type Environment = Literal["dev", "staging", "prod"]
type LogFormat = Literal["json", "console"]
type LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


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
    )

    env: Environment = "dev"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    debug: bool = False

    mcp_stateless: bool = Field(
        False,
        description="Stateless streamable HTTP with JSON responses (scale-out mode). "
        "Stateful with SSE responses otherwise; only stateful can sample the client's LLM.",
    )
    prompts_dir: Path | None = Field(
        None, description="A directory of extra prompt files, loaded after the built-ins."
    )

    docs_enabled: bool = True
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "json"

    @model_validator(mode="after")
    def _refuse_unsafe_in_prod(self) -> Self:
        if self.env == "prod" and self.debug:
            raise UnsafeSettings(
                "CTXFY_DEBUG=true is refused when CTXFY_ENV=prod: debug mode "
                "returns tracebacks to clients"
            )
        return self
