"""Fixtures that start real servers; each is stopped by PID when its tests finish."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.fake_llm import FakeLlm, fake_llm
from tests.e2e.server import RunningServer, running_server

NODE_DIR = Path(__file__).with_name("node")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", params=["stateful", "stateless"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A real server in each MCP transport mode, each with its own key store."""
    stateless = "true" if request.param == "stateless" else "false"
    database_dir = tmp_path_factory.mktemp(f"keys-{request.param}")
    env = {"CTXFY_MCP_STATELESS": stateless, "CTXFY_DRAIN_SECONDS": "0"}
    with running_server(database_dir, env) as started:
        yield started


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeLlm]:
    """A fake OpenAI-compatible LLM on 127.0.0.1 for a module's servers to call."""
    with fake_llm() as fake:
        yield fake


@pytest.fixture(scope="session")
def inspector_cli() -> list[str]:
    """The MCP Inspector CLI, run by the Node 22 that `npm ci` put beside it."""
    node = NODE_DIR / "node_modules" / ".bin" / "node"
    cli = (
        NODE_DIR
        / "node_modules"
        / "@modelcontextprotocol"
        / "inspector"
        / "cli"
        / "build"
        / "cli.js"
    )
    if not (node.exists() and cli.exists()):
        pytest.fail(
            f"The MCP Inspector is not installed in {NODE_DIR}: run `make test` "
            "(or `npm ci --ignore-scripts` there) first."
        )
    return [str(node), str(cli), "--cli"]
