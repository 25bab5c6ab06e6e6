"""checkov in a virtualenv of its own, built once under ``.tools/`` and reused.

checkov pulls in well over a hundred packages (cloud SDKs, parsers, its own pins of common
libraries), so it is kept out of the project's dependencies and lock. Like
the old MCP clients it is built by ``tool_venv``.
"""

from scripts.tool_venv import ToolVenvError, tool_python

PIN = "checkov==3.3.30"
INSTALL_TIMEOUT = 900  # a fresh machine downloads ~150 wheels, some of them large

CheckovVenvError = ToolVenvError


def checkov_command() -> tuple[str, ...]:
    """The command that runs checkov from a venv holding ``PIN``, built (bounded) unless
    already there.

    The venv's python runs checkov's module, not its ``bin/checkov`` script, whose shebang
    still names the directory the venv was built in before it was renamed into place.

    Raises:
        CheckovVenvError: venv creation or pip failed or timed out.
    """
    python = tool_python("checkov-venv", (PIN,), install_timeout=INSTALL_TIMEOUT)
    return (str(python), "-m", "checkov.main")
