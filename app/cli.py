"""The ``ctxfy`` command: serve the application, export its OpenAPI document, check prompts."""

import json
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from app.settings import Settings
from domain.errors import CatalogError
from infrastructure.catalog.loader import load_catalog

cli = typer.Typer(
    name="ctxfy",
    help="Ctxfy: context-engineering prompts over MCP and REST.",
    no_args_is_help=True,
    add_completion=False,
)
prompts_cli = typer.Typer(help="Work with the prompt catalog.", no_args_is_help=True)
cli.add_typer(prompts_cli, name="prompts")

DEFAULT_OPENAPI = Path("openapi/openapi.json")


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
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
    uvicorn.run(
        "app.main:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=30,
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


def main() -> None:
    """Entry point of the ``ctxfy`` console script."""
    cli()
