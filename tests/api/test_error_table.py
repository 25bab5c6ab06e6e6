"""The REST error table covers every error Ctxfy raises on purpose."""

import importlib
import pkgutil

import pytest
from fastapi import FastAPI

import app
import domain
import infrastructure
from app.http.errors import ERRORS, ErrorRule, rule_for
from app.services.authenticator import AuthenticationFailed
from domain.errors import CatalogError, CtxfyError
from domain.keys import MalformedKey
from domain.ports import DuplicateKeyId

# Raised on purpose, but answered elsewhere or never reaching a route.
NOT_REST_ANSWERS: dict[type[CtxfyError], str] = {
    CatalogError: "stops start-up; no request is served with a broken catalog",
    MalformedKey: "becomes AuthenticationFailed inside the authenticator",
    AuthenticationFailed: "answered 401 by the auth middleware before any route",
    DuplicateKeyId: "retried inside the key service with a new key id",
}


def _every_error() -> set[type[CtxfyError]]:
    for package in (app, domain, infrastructure):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith(".__main__"):  # running it would start the CLI
                importlib.import_module(info.name)
    found: set[type[CtxfyError]] = set()
    pending: list[type[CtxfyError]] = [CtxfyError]
    while pending:
        error = pending.pop()
        found.add(error)
        pending.extend(error.__subclasses__())
    return {e for e in found if e.__module__.startswith(("app.", "domain.", "infrastructure."))}


EVERY_ERROR = sorted(_every_error(), key=lambda e: e.__qualname__)


def test_errors_are_discovered_across_the_packages() -> None:
    modules = {e.__module__.split(".")[0] for e in EVERY_ERROR}
    assert modules == {"app", "domain"}


@pytest.mark.parametrize(
    "error",
    [e for e in EVERY_ERROR if e not in NOT_REST_ANSWERS and e is not CtxfyError],
    ids=lambda e: e.__name__,
)
def test_every_error_a_route_can_raise_has_its_own_row_in_the_table(
    error: type[CtxfyError],
) -> None:
    rule = rule_for(error)
    assert rule is not None
    assert rule.error is error, f"{error.__name__} falls back to its parent's row"


def test_the_base_error_has_no_row_so_a_new_error_cannot_hide_behind_it() -> None:
    assert rule_for(CtxfyError) is None


@pytest.mark.parametrize("rule", ERRORS, ids=lambda r: r.error.__name__)
def test_every_row_is_a_client_or_server_error_with_a_code_and_a_description(
    rule: ErrorRule,
) -> None:
    assert 400 <= rule.status < 600
    assert rule.error_code not in ("", "error")
    assert rule.description


def test_every_row_of_a_ctxfy_error_has_a_handler_registered(app: FastAPI) -> None:
    handled = set(app.exception_handlers)
    assert {r.error for r in ERRORS if issubclass(r.error, CtxfyError)} <= handled
