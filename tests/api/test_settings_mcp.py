"""MCP settings: request-state keys for 2026-07-28 round trips and list caching hints."""

import pytest
from pydantic import ValidationError

from app.settings import Settings

KEY = "k" * 32


def test_state_keys_are_split_on_commas_with_the_first_sealing() -> None:
    settings = Settings(mcp_state_keys=f" {KEY}1 , {KEY}2 ,")
    assert settings.state_keys == (f"{KEY}1", f"{KEY}2")


def test_without_state_keys_each_process_seals_with_its_own() -> None:
    assert Settings().state_keys == ()
    assert Settings(mcp_state_keys="  ").state_keys == ()


def test_a_short_state_key_is_refused_without_showing_it() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes") as refused:
        Settings(mcp_state_keys=f"{KEY},short-secret")
    assert "short-secret" not in str(refused.value)


def test_state_keys_never_appear_in_the_settings_repr() -> None:
    assert KEY not in repr(Settings(mcp_state_keys=KEY))


def test_prod_refuses_several_workers_without_shared_state_keys() -> None:
    prod = {
        "env": "prod",
        "argon2_time_cost": 2,
        "argon2_memory_cost_kib": 19_456,
        "database_url": "postgresql://ctxfy@db.internal/ctxfy",
    }
    with pytest.raises(ValidationError, match="CTXFY_MCP_STATE_KEYS must be set"):
        Settings(**prod, workers=2)  # type: ignore[arg-type]  # pydantic checks the values
    assert Settings(**prod, workers=2, mcp_state_keys=KEY).workers == 2  # type: ignore[arg-type]  # as above
    assert Settings(**prod, workers=1).workers == 1  # type: ignore[arg-type]  # as above


@pytest.mark.parametrize("seconds", [-1, 86_401])
def test_the_list_cache_time_is_bounded(seconds: int) -> None:
    with pytest.raises(ValidationError, match="mcp_list_cache_seconds"):
        Settings(mcp_list_cache_seconds=seconds)
