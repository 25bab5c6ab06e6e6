"""The committed OpenAPI document is the one the application serves."""

import json
from pathlib import Path

from typer.testing import CliRunner

from app.cli import cli
from app.main import create_app
from app.settings import Settings

COMMITTED = Path(__file__).parents[2] / "openapi" / "openapi.json"


def test_the_committed_openapi_document_matches_the_application() -> None:
    served = create_app(Settings(_env_file=None, prompts_dir=None, docs_enabled=True)).openapi()
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == served, "openapi/openapi.json is stale: run `make openapi` and commit it"


def test_the_openapi_command_writes_the_served_document(tmp_path: Path) -> None:
    output = tmp_path / "spec" / "openapi.json"
    result = CliRunner().invoke(cli, ["openapi", "--output", str(output)], env={})
    assert result.exit_code == 0, result.output
    assert (
        json.loads(output.read_text(encoding="utf-8"))
        == create_app(Settings(_env_file=None)).openapi()
    )
