"""An operator's prompts directory with one prompt in several versions, each with arguments of
its own, for the REST version, ETag and reload tests."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from domain.llm import LlmGateway
from tests.fakes import ScriptedLlm
from tests.integration.prompt_files import argument, prompt, write_prompt

NAME = "greet"
GENERATION = {"system_prompt": "You write greetings.", "max_tokens": 64}
# Every version's arguments differ, so a body shows which model validated it.
ARGUMENT_OF = {"1.0.0": "who", "1.1.0": "person", "2.0.0": "target", "1.2.0": "guest"}
CURRENT = "1.1.0"  # 2.0.0 is newer, but deprecated
SERVER_LLM: dict[str, Any] = {"llm_base_url": "https://llm.test/v1", "llm_model": "gpt-test"}


def version_document(version: str, *, deprecated: bool = False) -> dict[str, Any]:
    """``greet`` in ``version``: one required argument named for it, a generation block."""
    name = ARGUMENT_OF[version]
    document = prompt(
        title=f"Greet {version}",
        description=f"Says hello, version {version}.",
        version=version,
        arguments=[argument(name, required=True)],
        example={name: "world"},
        messages=[{"role": "user", "content": f"Hello ({version}), {{{{ {name} }}}}!"}],
        generation=GENERATION,
    )
    return (document | {"deprecated": True}) if deprecated else document


def write_version(directory: Path, version: str, *, deprecated: bool = False) -> Path:
    """Write one version of ``greet`` as its own file."""
    document = version_document(version, deprecated=deprecated)
    return write_prompt(directory, document, f"{NAME}-{version}.yaml")


def versioned_prompts(directory: Path) -> Path:
    """``greet`` 1.0.0, 1.1.0 (current) and 2.0.0 (deprecated), in ``directory``."""
    directory.mkdir(exist_ok=True)
    write_version(directory, "1.0.0")
    write_version(directory, "1.1.0")
    write_version(directory, "2.0.0", deprecated=True)
    return directory


def body_for(version: str, value: str = "Ada") -> dict[str, str]:
    """A valid body for ``version``'s arguments, and for no other version's."""
    return {ARGUMENT_OF[version]: value}


def rendered(version: str, value: str = "Ada") -> str:
    """What ``version`` renders ``body_for(version, value)`` to."""
    return f"Hello ({version}), {value}!"


def versioned_app(
    directory: Path, llm: LlmGateway | None = None, *, settings: Mapping[str, Any] | None = None
) -> FastAPI:
    """An app serving the built-ins and ``directory`` (and other ``settings``), its server
    LLM faked by ``llm``."""
    built = Settings(prompts_dir=directory, **SERVER_LLM, **(settings or {}))
    return create_app(built, server_llm=llm or ScriptedLlm())


def remove_prompt_files(directory: Path) -> None:
    """Delete every prompt file of ``directory``."""
    for path in directory.iterdir():
        path.unlink()
