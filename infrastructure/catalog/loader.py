"""Loads prompt files (built-in and an operator's directory) into a ``PromptCatalog``."""

import functools
import hashlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from domain.errors import CatalogError, InvalidArguments, PromptRenderError
from domain.prompts import is_version
from infrastructure.catalog.arguments import build_argument_model
from infrastructure.catalog.catalog import CatalogEntry, PromptCatalog
from infrastructure.catalog.schema import PromptFile
from infrastructure.catalog.templates import compile_template, template_environment

BUILTIN_DIR = Path(__file__).with_name("builtin")
PROMPT_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 1_048_576
# Compiled entries kept by (path, bytes): every version of a large catalog, with room to spare.
COMPILED_CACHE_SIZE = 1024

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# The names pydantic appends to an error's path for each member of a scalar union.
# pydantic's names of the scalar types a field may take, as the format documents them.
_UNION_MEMBERS = {"str": "string", "bool": "boolean", "int": "integer", "float": "number"}


def _read_bytes(path: Path) -> bytes:
    """The bytes of ``path``, refused past ``MAX_FILE_BYTES``."""
    source = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CatalogError(f"file is larger than {MAX_FILE_BYTES} bytes", source=source)
        raw = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"cannot read file: {exc.strerror}", source=source) from None
    if len(raw) > MAX_FILE_BYTES:  # grown since stat
        raise CatalogError(f"file is larger than {MAX_FILE_BYTES} bytes", source=source)
    return raw


def _decode(source: str, raw: bytes) -> object:
    """The parsed YAML of one file's bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CatalogError("file is not valid UTF-8", source=source) from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 — a safe loader, C or pure Python
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise CatalogError(f"invalid YAML{where}: {problem}", source=source) from None


def _parse(source: str, document: object) -> PromptFile:
    if not isinstance(document, dict):
        raise CatalogError("a prompt file must be a YAML mapping", source=source)
    name, version = document.get("name"), document.get("version")
    prompt = name if isinstance(name, str) else None
    try:
        return PromptFile.model_validate(document)
    except ValidationError as exc:
        raise _first_error(exc).located(
            source=source,
            prompt=prompt,
            # Named only when it is one: a malformed version is the error being reported.
            version=version if isinstance(version, str) and is_version(version) else None,
        ) from None


def _first_error(exc: ValidationError) -> CatalogError:
    """The first problem, at the path written in the file.

    For a value that may take several types pydantic reports one error per type, with the
    type's name appended to the path; those are folded into one message.
    """
    errors = exc.errors(include_url=False)
    path = [str(part) for part in errors[0]["loc"] if part not in _UNION_MEMBERS]
    same_place = [
        e for e in errors if [str(p) for p in e["loc"] if p not in _UNION_MEMBERS] == path
    ]
    kinds = list(
        dict.fromkeys(
            _UNION_MEMBERS[str(part)]
            for e in same_place
            for part in e["loc"]
            if str(part) in _UNION_MEMBERS
        )
    )
    if len(same_place) > 1 and kinds:
        *others, last = kinds
        message = f"must be a single {', '.join(others)}{' or ' if others else ''}{last} value"
    else:
        message = errors[0]["msg"]
    rest = exc.error_count() - len(same_place)
    more = f" (and {rest} more)" if rest else ""
    return CatalogError(f"{message}{more}", field=".".join(path))


def load_entry(path: Path) -> CatalogEntry:
    """Load and fully check one prompt file.

    A file whose bytes were checked before (same path, same content) is not parsed and
    compiled again: a reload pays only for the files that changed.
    """
    return _compile(str(path), _read_bytes(path))


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _compile(source: str, raw: bytes) -> CatalogEntry:
    """One file's entry from its bytes; entries are immutable, so they are shared."""
    parsed = _parse(source, _decode(source, raw))
    try:
        definition = parsed.to_domain()
        env = template_environment()
        allowed = frozenset(a.name for a in definition.arguments)
        templates = tuple(
            compile_template(env, m.template, allowed=allowed, field=f"messages[{i}].content")
            for i, m in enumerate(definition.messages)
        )
        entry = CatalogEntry(
            definition=definition,
            templates=templates,
            argument_model=build_argument_model(definition),
            source=source,
            digest=hashlib.sha256(raw).hexdigest(),
        )
        _check_values(entry)
    except CatalogError as exc:
        version = parsed.version if is_version(parsed.version) else None
        raise exc.located(source=source, prompt=parsed.name, version=version) from None
    return entry


def _check_values(entry: CatalogEntry) -> None:
    """Defaults and the example must pass the argument model, and the example must render."""
    for argument in entry.definition.arguments:
        if argument.default is None:
            continue
        try:
            entry.validate({**entry.definition.example_arguments, argument.name: argument.default})
        except InvalidArguments as exc:
            raise CatalogError(
                exc.errors[0].message, field=f"arguments.{argument.name}.default"
            ) from None
    try:
        entry.render(entry.definition.example_arguments)
    except InvalidArguments as exc:
        error = exc.errors[0]
        raise CatalogError(error.message, field=f"example.{error.field}") from None
    except PromptRenderError as exc:
        raise CatalogError(f"the example does not render: {exc.reason}", field="messages") from None


def prompt_files(directory: Path) -> list[Path]:
    """The prompt files of ``directory``, sorted by name."""
    if not directory.is_dir():
        raise CatalogError(
            "prompts directory does not exist or is not a directory", source=str(directory)
        )
    return sorted(p for p in directory.iterdir() if p.suffix in PROMPT_SUFFIXES and p.is_file())


def load_catalog(
    extra_dir: Path | None = None, *, builtin_dir: Path = BUILTIN_DIR
) -> PromptCatalog:
    """Built-in prompts plus an operator's directory; any problem raises ``CatalogError``.

    A prompt's versions all come from one of the two: an operator's file cannot add a
    version to a built-in prompt, so an upgrade never collides with an operator's version.
    """
    builtin = [load_entry(path) for path in prompt_files(builtin_dir)]
    extra = [load_entry(path) for path in prompt_files(extra_dir)] if extra_dir else []
    builtin_sources = {entry.name: entry.source for entry in builtin}
    for entry in extra:
        clash = builtin_sources.get(entry.name)
        if clash is not None:
            raise CatalogError(
                f"prompt name is already defined by {clash}",
                source=entry.source,
                prompt=entry.name,
                version=entry.version,
                field="name",
            )
    return PromptCatalog([*builtin, *extra])
