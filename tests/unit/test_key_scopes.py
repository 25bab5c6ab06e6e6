"""API keys in ``domain.keys``: scopes and the principals that hold them."""

import pytest

from domain.errors import CtxfyError
from domain.keys import KeyNotFound, Principal, Scope, ScopeNotGrantable, may_grant


def principal(scope: Scope) -> Principal:
    return Principal(key_id="0123456789abcdef", user_id="ada", scope=scope)


@pytest.mark.parametrize(
    ("held", "needed", "allowed"),
    [
        (Scope.READ, Scope.READ, True),
        (Scope.READ, Scope.WRITE, False),
        (Scope.READ, Scope.ADMIN, False),
        (Scope.WRITE, Scope.READ, True),
        (Scope.WRITE, Scope.WRITE, True),
        (Scope.WRITE, Scope.ADMIN, False),
        (Scope.ADMIN, Scope.READ, True),
        (Scope.ADMIN, Scope.WRITE, True),
        (Scope.ADMIN, Scope.ADMIN, True),
    ],
)
def test_a_scope_includes_itself_and_the_scopes_below_it(
    held: Scope, needed: Scope, allowed: bool
) -> None:
    assert held.includes(needed) is allowed
    assert principal(held).may(needed) is allowed
    assert may_grant(principal(held), needed) is allowed


def test_scopes_rank_read_below_write_below_admin() -> None:
    assert [scope.rank for scope in (Scope.READ, Scope.WRITE, Scope.ADMIN)] == [0, 1, 2]
    assert [Scope(value) for value in ("read", "write", "admin")] == list(Scope)


def test_a_scope_grants_itself_and_every_scope_below_it_narrowest_first() -> None:
    assert Scope.READ.granted() == (Scope.READ,)
    assert Scope.WRITE.granted() == (Scope.READ, Scope.WRITE)
    assert Scope.ADMIN.granted() == (Scope.READ, Scope.WRITE, Scope.ADMIN)


def test_key_errors_name_the_key_or_the_scope_they_are_about() -> None:
    missing = KeyNotFound("0123456789abcdef")
    assert (missing.key_id, str(missing)) == (
        "0123456789abcdef",
        "No key with id '0123456789abcdef'",
    )
    refused = ScopeNotGrantable(Scope.ADMIN)
    assert refused.scope is Scope.ADMIN
    assert "'admin'" in str(refused)
    assert isinstance(missing, CtxfyError)
    assert isinstance(refused, CtxfyError)


@pytest.mark.parametrize("scope", list(Scope))
def test_the_operator_cli_may_grant_any_scope(scope: Scope) -> None:
    assert may_grant(None, scope)
