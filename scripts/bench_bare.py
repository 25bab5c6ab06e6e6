"""The benchmark's reference: Ctxfy's built-in prompts served by a plain FastMCP app.

FastMCP mounted in FastAPI, as its documentation shows it, with nothing of Ctxfy's around it:
no authentication, logging, metrics, limits or argument validation beyond FastMCP's own. The
prompts are the same files (``infrastructure/catalog/builtin``) rendered by Jinja with the
same options; each is a plain ``def`` whose parameters are the prompt's arguments, the way a
FastMCP user writes one. It also serves a plain FastAPI preview endpoint and a liveness
route, the references for Ctxfy's REST preview and ``/health/live``.

It imports only FastMCP, FastAPI, PyYAML, Jinja and uvicorn, so it runs in the project's
venv (the same FastMCP version Ctxfy uses) and in a venv of FastMCP 2.14 alike:

    python scripts/bench_bare.py --port 8001 [--stateless]
"""

import argparse
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from fastapi import FastAPI
from fastmcp import FastMCP
from fastmcp.prompts import Prompt
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

BUILTIN_DIR = Path(__file__).resolve().parents[1] / "infrastructure" / "catalog" / "builtin"
ENV = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined,
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
)


def prompt_function(document: dict[str, Any]) -> Callable[..., str]:
    """A ``def`` rendering ``document``'s messages, with its arguments as parameters."""
    templates = [ENV.from_string(message["content"]) for message in document["messages"]]
    defaults = {a["name"]: a.get("default") for a in document.get("arguments", [])}

    def render(**arguments: Any) -> str:
        values = defaults | {k: v for k, v in arguments.items() if v is not None}
        return "\n\n".join(template.render(**values) for template in templates)

    parameters = [
        inspect.Parameter(
            argument["name"],
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty if argument.get("required") else None,
            annotation=str if argument.get("required") else str | None,
        )
        for argument in document.get("arguments", [])
    ]
    # FastMCP reads both the signature and the type hints.
    render.__signature__ = inspect.Signature(parameters, return_annotation=str)  # type: ignore[attr-defined]
    render.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": str}
    render.__name__ = document["name"]
    return render


def create_app(*, stateless: bool) -> FastAPI:
    """FastAPI with the FastMCP app at ``/mcp``, a preview endpoint and ``/health/live``."""
    mcp = FastMCP("bare")
    functions: dict[str, Callable[..., str]] = {}
    for path in sorted(BUILTIN_DIR.glob("*.yaml")):
        document = yaml.safe_load(path.read_text("utf-8"))
        function = functions[document["name"]] = prompt_function(document)
        mcp.add_prompt(
            Prompt.from_function(
                function, name=document["name"], description=document["description"]
            )
        )
    mcp_app = mcp.http_app(path="/mcp", stateless_http=stateless, json_response=stateless)
    app = FastAPI(lifespan=mcp_app.lifespan)

    @app.post("/v1/prompts/{name}/preview")
    async def preview(name: str, arguments: dict[str, Any]) -> dict[str, str]:
        return {"text": functions[name](**arguments)}

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    app.mount("/", mcp_app)
    return app


def main() -> None:
    """Serve on 127.0.0.1 with the uvicorn options ``ctxfy serve`` uses."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stateless", action="store_true", help="stateless, JSON responses")
    args = parser.parse_args()
    uvicorn.run(
        create_app(stateless=args.stateless),
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
