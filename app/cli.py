"""The ``ctxfy`` command: serve the application, export its OpenAPI document, check prompts,
manage keys and generation records."""

import json
import os
import re
import secrets
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import anyio
import typer
from pydantic import ValidationError

from app.bootstrap import build_keys, package_version
from app.mcp.generations import record_fields
from app.services.keys import KeyService
from app.settings import Settings
from domain.errors import CatalogError
from domain.generation_records import MAX_PAGE, GenerationOutcome, RecordQuery, is_record_id
from domain.keys import (
    LIFETIME_NOT_POSITIVE,
    USER_ID_PATTERN,
    InvalidKeyName,
    KeyConflict,
    KeyLifecycleError,
    KeyNotFound,
    Scope,
    ScopeNotGrantable,
)
from domain.ports import GenerationRecords, KeyStoreUnavailable
from domain.text import escaped
from infrastructure.catalog.loader import load_catalog
from infrastructure.keystore.records import SqlGenerationRecords
from infrastructure.keystore.sql import SqlKeyStore
from infrastructure.logging import configure_logging
from infrastructure.metrics import Metrics, prepare_multiprocess_dir
from infrastructure.process.pid_file import PidFileError, signal_server

cli = typer.Typer(
    name="ctxfy",
    help="Ctxfy: context-engineering prompts over MCP and REST.",
    no_args_is_help=True,
    add_completion=False,
)
prompts_cli = typer.Typer(help="Work with the prompt catalog.", no_args_is_help=True)
cli.add_typer(prompts_cli, name="prompts")
keys_cli = typer.Typer(
    help="Manage API keys in the configured key store (CTXFY_DATABASE_URL).",
    no_args_is_help=True,
)
cli.add_typer(keys_cli, name="keys")
generations_cli = typer.Typer(
    help="Read and purge generation records in the configured database (CTXFY_DATABASE_URL).",
    no_args_is_help=True,
)
cli.add_typer(generations_cli, name="generations")

DEFAULT_OPENAPI = Path("openapi/openapi.json")


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]  # pydantic checks the CLI's loose values
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: "
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors(include_url=False)
        )
        typer.echo(f"ctxfy: invalid settings: {problems}", err=True)
        raise typer.Exit(2) from None


def _check_catalog(prompts_dir: Path | None) -> int:
    try:
        return len(load_catalog(prompts_dir))
    except CatalogError as exc:
        typer.echo(f"ctxfy: prompt catalog error: {exc}", err=True)
        raise typer.Exit(2) from None


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind [CTXFY_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [CTXFY_PORT].")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes [CTXFY_WORKERS].")] = None,
) -> None:
    """Serve REST, docs and MCP (at /mcp) under uvicorn."""
    # Only the bind address and worker count come from flags; the app's own settings are
    # read from the environment by each worker, so every worker is configured alike.
    settings = _settings(host=host, port=port, workers=workers)
    # Fail here, once, with a clear message, rather than in every worker.
    _check_catalog(settings.prompts_dir)
    if settings.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Without a shared directory each worker would report only its own counts.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ctxfy-metrics-")
    if settings.workers > 1 and not settings.state_keys:
        # One key for this server's workers, so a round trip may come back to any of them
        # (prod refuses to start without shared keys: replicas need them too).
        os.environ["CTXFY_MCP_STATE_KEYS"] = secrets.token_urlsafe(32)
    # Once, before workers start: stale files would be summed into every scrape.
    prepare_multiprocess_dir()
    # The supervisor of several workers logs too (forwarded signals, the pid file).
    configure_logging(
        level=settings.log_level, fmt=settings.log_format if settings.env == "dev" else "json"
    )
    from app.http.header_guard import HeaderLimits  # imported here to keep `ctxfy --help` fast
    from app.serve import run

    run(
        "app.main:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        drain_seconds=settings.drain_seconds,
        # A client gets this long, and this many bytes, for a request's line and headers.
        header_limits=HeaderLimits(
            timeout=settings.header_timeout_seconds, max_bytes=settings.max_header_bytes
        ),
        pid_file=settings.pid_path,
        timeout_keep_alive=settings.keep_alive_seconds,
        log_config=None,
        access_log=False,  # one access line per request comes from the app itself
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
    )


@cli.command()
def openapi(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the document; - for stdout.")
    ] = DEFAULT_OPENAPI,
) -> None:
    """Write the OpenAPI document of the application as built from its settings."""
    from app.main import create_app  # imported here to keep `ctxfy --help` fast

    settings = _settings()
    _check_catalog(settings.prompts_dir)
    document = json.dumps(create_app(settings).openapi(), indent=2, ensure_ascii=False) + "\n"
    if str(output) == "-":
        typer.echo(document, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(document, encoding="utf-8")
    typer.echo(f"wrote {output}", err=True)


@prompts_cli.command("check")
def prompts_check(
    directory: Annotated[
        Path | None, typer.Argument(help="A prompts directory; default CTXFY_PROMPTS_DIR.")
    ] = None,
) -> None:
    """Load the built-in prompts plus a directory and report the first problem, if any."""
    settings = _settings()
    count = _check_catalog(directory or settings.prompts_dir)
    typer.echo(f"ok: {count} prompts")


@prompts_cli.command(
    "reload",
    epilog="The outcome is in the server's log, GET /health and ctxfy_catalog_reload_total. "
    "Exit status: 0 signalled; 1 no server to signal (no pid file, a stale one, or another "
    "user's process); 2 the catalog or the settings are invalid, and nothing was signalled.",
)
def prompts_reload(
    port: Annotated[
        int | None, typer.Option(help="The server's port, naming its pid file [CTXFY_PORT].")
    ] = None,
    pid_file: Annotated[
        Path | None,
        typer.Option("--pid-file", help="The server's pid file [CTXFY_PID_FILE]."),
    ] = None,
) -> None:
    """Validate the catalog here, then signal the running server (SIGHUP) to reload it.

    The server validates again and keeps serving its old catalog if a file is broken.
    """
    settings = _settings(port=port, pid_file=pid_file)
    try:
        catalog = load_catalog(settings.prompts_dir)
    except CatalogError as exc:
        typer.echo(f"ctxfy: prompt catalog error, nothing signalled: {exc}", err=True)
        raise typer.Exit(2) from None
    path = settings.pid_path
    try:
        pid = signal_server(path)
    except PidFileError as exc:
        typer.echo(f"ctxfy: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"valid: {len(catalog)} prompts, {catalog.version_count} versions; "
        f"sent SIGHUP to the server, pid {pid} (from {path})"
    )


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m`` or ``45s`` as a time span."""
    match = re.fullmatch(r"(\d{1,6})([dhms])", text.strip())
    if match is None:
        raise typer.BadParameter("use a number and a unit: 90d, 12h, 30m or 45s")
    amount, unit = int(match[1]), match[2]
    return timedelta(**{_UNITS[unit]: amount})


_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def _run_keys[T](operation: Callable[[KeyService], Awaitable[T]]) -> T:
    """Run one key operation against the configured store, with plain errors.

    Log lines (the audit trail among them) go to stderr: stdout carries only a new key.
    """
    settings = _settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format, stream=sys.stderr)

    async def run() -> T:
        parts = build_keys(settings, Metrics(version=package_version()))
        await parts.store.start()
        try:
            return await operation(parts.keys)
        finally:
            await parts.store.close()

    try:
        return anyio.run(run)
    except KeyStoreUnavailable as exc:
        typer.echo(f"ctxfy: key store unavailable: {exc}", err=True)
        raise typer.Exit(3) from None
    except (KeyNotFound, KeyLifecycleError, KeyConflict, InvalidKeyName, ScopeNotGrantable) as exc:
        typer.echo(f"ctxfy: {exc}", err=True)
        raise typer.Exit(1) from None


@keys_cli.command("create")
def keys_create(
    user: Annotated[str, typer.Option("--user", help="Who the key belongs to.")],
    scope: Annotated[Scope, typer.Option("--scope", help="read, write or admin.")],
    name: Annotated[str, typer.Option("--name", help="What the key is for.")] = "",
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="Lifetime, e.g. 90d (default: settings).")
    ] = None,
) -> None:
    """Create a key and print it once, alone on stdout, so scripts can capture it."""
    if expires_in is not None and re.fullmatch(r"0+[dhms]?", expires_in.strip()):
        # Zero is refused, never read as "not given"; in the words REST and the service use.
        raise typer.BadParameter(LIFETIME_NOT_POSITIVE, param_hint="'--expires-in'")
    lifetime = parse_duration(expires_in) if expires_in is not None else None
    if not USER_ID_PATTERN.fullmatch(user):
        raise typer.BadParameter("1-128 characters of A-Z a-z 0-9 . _ @ : + -", param_hint="--user")
    issued = _run_keys(
        lambda keys: keys.create(user_id=user, scope=scope, name=name, lifetime=lifetime)
    )
    typer.echo(
        f"created key {issued.info.key_id} ({scope.value}) for {user}, "
        f"expires {issued.info.expires_at:%Y-%m-%d %H:%M} UTC; it is shown only now",
        err=True,
    )
    typer.echo(issued.plaintext)


@keys_cli.command("list")
def keys_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's keys.")] = None,
) -> None:
    """List keys, newest first; secrets are never shown."""
    infos = _run_keys(lambda keys: keys.list(user_id=user))
    now = datetime.now(UTC)
    typer.echo(
        f"{'KEY ID':<17}{'USER':<24}{'SCOPE':<7}{'STATUS':<9}{'EXPIRES':<17}{'LAST USED':<17}NAME"
    )
    for info in infos:
        last = f"{info.last_used_at:%Y-%m-%d %H:%M}" if info.last_used_at else "never"
        typer.echo(
            f"{info.key_id:<17}{info.user_id[:23]:<24}{info.scope.value:<7}"
            f"{info.status(now).value:<9}{info.expires_at:%Y-%m-%d %H:%M}  {last:<17}"
            f"{escaped(info.name)}"
        )


@keys_cli.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id.")]) -> None:
    """Revoke a key now (other processes stop accepting it within the auth cache TTL)."""
    info = _run_keys(lambda keys: keys.revoke(key_id))
    typer.echo(f"revoked {info.key_id} at {info.revoked_at:%Y-%m-%d %H:%M:%S} UTC", err=True)


@keys_cli.command("rotate")
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="The key to replace.")],
    grace: Annotated[
        str, typer.Option("--grace", help="How long the old key keeps working, e.g. 1h.")
    ] = "0s",
) -> None:
    """Issue a replacement key, printed once on stdout; the old one ends after the grace."""
    period = parse_duration(grace)
    issued = _run_keys(lambda keys: keys.rotate(key_id, grace=period))
    typer.echo(f"rotated {key_id} -> {issued.info.key_id}; the new key is shown only now", err=True)
    typer.echo(issued.plaintext)


RECORDS_EXIT = (
    "Exit status: 0 done; 1 no such record; 2 invalid input or settings; 3 the database "
    "is unavailable."
)


def _run_records[T](operation: Callable[[GenerationRecords], Awaitable[T]]) -> T:
    """Run one operation on the generation records of the configured database."""
    settings = _settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format, stream=sys.stderr)

    async def run() -> T:
        store = SqlKeyStore(settings.database_url.get_secret_value())
        await store.start()
        try:
            return await operation(SqlGenerationRecords(store))
        finally:
            await store.close()

    try:
        return anyio.run(run)
    except KeyStoreUnavailable as exc:
        typer.echo(f"ctxfy: database unavailable: {exc}", err=True)
        raise typer.Exit(3) from None


@generations_cli.command("list", epilog=RECORDS_EXIT)
def generations_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's records.")] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", help="Only this prompt's.")] = None,
    outcome: Annotated[
        GenerationOutcome | None, typer.Option("--outcome", help="ok, error or cancelled.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_PAGE, help="How many, newest first.")
    ] = 20,
    before: Annotated[
        str | None,
        typer.Option("--before", help="Only records older than this id (the next page)."),
    ] = None,
) -> None:
    """List generation records, newest first; documents and arguments are not shown."""
    if before is not None and not is_record_id(before):
        raise typer.BadParameter(
            "not a generation id (gen_ and 26 characters)", param_hint="--before"
        )
    query = RecordQuery(user_id=user, prompt=prompt, outcome=outcome, before_id=before, limit=limit)
    records = _run_records(lambda records: records.list(query))
    typer.echo(
        f"{'GENERATION ID':<31}{'CREATED (UTC)':<21}{'USER':<24}{'PROMPT':<32}"
        f"{'OUTCOME':<24}{'TOKENS':<12}MODEL"
    )
    for record in records:
        counted = record.input_tokens is not None or record.output_tokens is not None
        tokens = f"{record.input_tokens or 0}/{record.output_tokens or 0}" if counted else "-"
        outcome_text = record.outcome.value + (f" {record.failure}" if record.failure else "")
        typer.echo(
            f"{record.record_id:<31}{record.created_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}  "
            f"{escaped(record.user_id or '-')[:23]:<24}"
            f"{escaped(f'{record.prompt}@{record.prompt_version}')[:31]:<32}"
            f"{escaped(outcome_text)[:23]:<24}{tokens:<12}{escaped(record.model or '-')}"
        )


@generations_cli.command("show", epilog=RECORDS_EXIT)
def generations_show(
    generation_id: Annotated[str, typer.Argument(help="The record's id (gen_...).")],
) -> None:
    """Print one record as JSON, its arguments and document included when they were kept."""
    if not is_record_id(generation_id):
        raise typer.BadParameter(
            "not a generation id (gen_ and 26 characters)", param_hint="GENERATION_ID"
        )
    record = _run_records(lambda records: records.get(generation_id, user_id=None))
    if record is None:
        typer.echo(f"ctxfy: no generation record {generation_id}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(record_fields(record), indent=2, ensure_ascii=False))


@generations_cli.command("purge", epilog=RECORDS_EXIT)
def generations_purge(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Delete records older than this, e.g. 30d "
            "(default: CTXFY_GENERATION_RETENTION_DAYS).",
        ),
    ] = None,
) -> None:
    """Delete old generation records now, as the server's own purge does; prints how many."""
    if older_than is not None:
        try:
            age = parse_duration(older_than)
        except typer.BadParameter as exc:
            raise typer.BadParameter(str(exc), param_hint="--older-than") from None
        if not age:
            raise typer.BadParameter("must be more than zero", param_hint="--older-than")
    else:
        age = timedelta(days=_settings().generation_retention_days)
    cutoff = datetime.now(UTC) - age
    deleted = _run_records(lambda records: records.purge(cutoff))
    typer.echo(
        f"deleted {deleted} generation records created before {cutoff:%Y-%m-%d %H:%M:%S} UTC"
    )


def main() -> None:
    """Entry point of the ``ctxfy`` console script."""
    cli()
