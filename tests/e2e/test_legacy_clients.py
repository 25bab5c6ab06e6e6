"""Old MCP clients, which speak only the initialize-era protocol, against real Ctxfy servers.

The official SDK 1.x (``ClientSession`` over ``streamablehttp_client``) and the FastMCP 3
``Client`` run in a venv of their own (see ``tests/e2e/legacy.py``), each as one subprocess
per server and sampling choice whose report is shared by the tests below. Their LLM is a
fixed answer that remembers what it was asked.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from infrastructure.catalog.loader import load_catalog
from tests.e2e.legacy import LegacyVenvError, Seen, legacy_python, run_legacy_client
from tests.e2e.server import RunningServer, running_server

CATALOG = load_catalog()
PROMPT = "context_stack"
TOOL = f"generate_{PROMPT}"
DEFINITION = CATALOG.get(PROMPT).definition
EXAMPLE = DEFINITION.example_arguments
RENDERED = CATALOG.get(PROMPT).render(EXAMPLE).messages[0].text
GENERATING = {f"generate_{e.name}" for e in CATALOG if e.definition.generation is not None}
CLIENT_TEXT = "# Context stack\nWritten by the old client's own LLM."
CLIENT_MODEL = "legacy-e2e-model"
REQUEST = {
    "prompt": PROMPT,
    # prompts/get sends strings only; tools/call sends the example's own JSON values
    "prompt_arguments": {
        k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in EXAMPLE.items()
    },
    "tool": TOOL,
    "tool_arguments": EXAMPLE,
    "answer": {"text": CLIENT_TEXT, "model": CLIENT_MODEL},
}

OLD_CLIENTS = pytest.mark.parametrize("client", ["sdk1", "fastmcp3"])


class Run(Protocol):
    """What ``client`` saw on one server, with or without an LLM to sample."""

    def __call__(self, client: str, *, sampling: bool) -> Seen: ...


@pytest.fixture(scope="session")
def old_clients_python() -> Path:
    """The legacy-clients venv's python; a venv that cannot be built fails, with pip's say."""
    try:
        return legacy_python()
    except LegacyVenvError as exc:
        pytest.fail(str(exc))


def _runs(python: Path, server: RunningServer) -> Run:
    """One subprocess per (client, sampling) on ``server``, its report kept for every test."""
    seen: dict[tuple[str, bool], Seen] = {}

    def run(client: str, *, sampling: bool) -> Seen:
        if (client, sampling) not in seen:
            seen[client, sampling] = run_legacy_client(
                python, server, client, REQUEST, sampling=sampling
            )
        return seen[client, sampling]

    return run


@pytest.fixture(scope="module")
def stateful(old_clients_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Stateful, no server-side LLM (the default client mode), a write key."""
    env = {"CTXFY_MCP_STATELESS": "false", "CTXFY_DRAIN_SECONDS": "0"}
    with running_server(tmp_path_factory.mktemp("legacy"), env, scope="write") as server:
        yield _runs(old_clients_python, server)


@pytest.fixture(scope="module")
def stateless(old_clients_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Stateless, no server-side LLM, a write key."""
    env = {"CTXFY_MCP_STATELESS": "true", "CTXFY_DRAIN_SECONDS": "0"}
    with running_server(tmp_path_factory.mktemp("legacy-sl"), env, scope="write") as server:
        yield _runs(old_clients_python, server)


@pytest.fixture(params=["stateful", "stateless"])
def each_server(request: pytest.FixtureRequest) -> Run:
    """The runs on each server in turn."""
    run: Run = request.getfixturevalue(request.param)
    return run


@OLD_CLIENTS
def test_an_old_client_lists_the_catalog_and_gets_a_prompt_as_the_catalog_renders_it(
    each_server: Run, client: str
) -> None:
    seen = each_server(client, sampling=True)
    assert seen.client == client
    assert list(seen.prompts) == [e.name for e in CATALOG]
    assert seen.rendered == RENDERED


@OLD_CLIENTS
def test_an_old_client_negotiates_an_initialize_era_protocol_version(
    each_server: Run, client: str
) -> None:
    version = each_server(client, sampling=True).protocol_version
    assert version in HANDSHAKE_PROTOCOL_VERSIONS
    assert version != "2026-07-28"


@OLD_CLIENTS
def test_an_old_client_that_samples_gets_a_document_written_by_its_own_llm(
    stateful: Run, client: str
) -> None:
    seen = stateful(client, sampling=True)
    assert seen.tools >= GENERATING
    assert not seen.tool.is_error, seen.tool.text
    assert seen.tool.text == CLIENT_TEXT
    structured = seen.tool.structured or {}
    assert structured["prompt"] == PROMPT
    assert structured["document"] == CLIENT_TEXT
    assert (structured["route"], structured["provider"], structured["model"]) == (
        "client",
        "mcp-client",
        CLIENT_MODEL,
    )


@OLD_CLIENTS
def test_an_old_clients_llm_is_asked_once_with_the_rendered_prompt(
    stateful: Run, client: str
) -> None:
    [asked] = stateful(client, sampling=True).sampled
    generation = DEFINITION.generation
    assert generation is not None
    assert asked.messages == (RENDERED,)
    assert asked.system_prompt == generation.system_prompt
    assert asked.max_tokens == generation.max_tokens
    assert asked.temperature == generation.temperature


@OLD_CLIENTS
def test_an_old_client_without_sampling_is_told_sampling_is_unavailable(
    stateful: Run, client: str
) -> None:
    seen = stateful(client, sampling=False)
    assert seen.tool.is_error
    assert seen.tool.text.startswith("sampling_unavailable:"), seen.tool.text
    assert seen.tool.structured is None
    assert seen.sampled == ()


@OLD_CLIENTS
def test_a_stateless_server_tells_an_old_client_that_samples_why_it_cannot(
    stateless: Run, client: str
) -> None:
    seen = stateless(client, sampling=True)
    assert seen.tool.is_error
    assert seen.tool.text.startswith("sampling_unavailable:"), seen.tool.text
    assert "stateless" in seen.tool.text
    assert seen.sampled == ()
