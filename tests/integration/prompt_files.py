"""Prompt files for loader tests: a valid minimal prompt, changed only where a test says."""

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from infrastructure.catalog.catalog import CatalogEntry
from infrastructure.catalog.loader import load_entry

MINIMAL: dict[str, Any] = {
    "name": "greet",
    "title": "Greet",
    "description": "Says hello.",
    "version": "1.0.0",
    "arguments": [
        {"name": "who", "type": "string", "description": "Who to greet.", "required": True}
    ],
    "example": {"who": "world"},
    "messages": [{"role": "user", "content": "Hello, {{ who }}!"}],
}


def prompt(*, drop: Iterable[str] = (), **changes: Any) -> dict[str, Any]:
    """The minimal prompt document with top-level ``changes`` applied and ``drop`` removed."""
    document = copy.deepcopy(MINIMAL) | changes
    for key in drop:
        del document[key]
    return document


def argument(name: str, argument_type: str = "string", **fields: Any) -> dict[str, Any]:
    """One ``arguments:`` entry with a description."""
    return {"name": name, "type": argument_type, "description": f"The {name}."} | fields


def write_prompt(directory: Path, document: object, filename: str = "greet.yaml") -> Path:
    """Write ``document`` as YAML into ``directory``."""
    path = directory / filename
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), "utf-8")
    return path


def load_prompt(directory: Path, document: object) -> CatalogEntry:
    """Write ``document`` and load it as one catalog entry."""
    return load_entry(write_prompt(directory, document))


def write_unrenderable_prompts(directory: Path, generation: dict[str, Any]) -> None:
    """Generating prompts whose messages some valid arguments cannot render usefully.

    ``divide``: ``n=0`` fails in the template. ``maybe``: without ``who`` its second message
    renders empty (the first still says something). ``blank``: without ``who`` every message
    renders empty.
    """
    divide = [{"role": "user", "content": "Ten over n is {{ 10 // n }}."}]
    hello = "{% if who %}Hello, {{ who }}.{% endif %}"
    maybe = [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": hello}]
    blank = [{"role": "user", "content": hello}]
    for name, declared, example, messages in [
        ("divide", argument("n", "integer", required=True), {"n": 2}, divide),
        ("maybe", argument("who"), {"who": "Ada"}, maybe),
        ("blank", argument("who"), {"who": "Ada"}, blank),
    ]:
        document = prompt(
            name=name,
            arguments=[declared],
            example=example,
            messages=messages,
            generation=generation,
        )
        write_prompt(directory, document, f"{name}.yaml")
