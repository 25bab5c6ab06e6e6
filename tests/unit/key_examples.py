"""A golden key and a stored-key builder shared by the ``domain.keys`` tests."""

from datetime import UTC, datetime, timedelta

from domain.keys import ApiKeyInfo, Scope

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
GOLDEN = "ctxfy_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2iI5Et"


def info(**changes: object) -> ApiKeyInfo:
    """A valid stored key (a write key living 90 days from ``NOW``), with ``changes``."""
    fields: dict[str, object] = {
        "key_id": "0123456789abcdef",
        "api_key_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "user_id": "ada",
        "name": "laptop",
        "scope": Scope.WRITE,
        "created_at": NOW,
        "expires_at": NOW + 90 * DAY,
    }
    fields.update(changes)
    return ApiKeyInfo(**fields)  # type: ignore[arg-type]  # per-test values, for ApiKeyInfo to check
