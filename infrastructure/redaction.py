"""Log redaction: credentials never reach a log line, by field name or by their look."""

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

MASK = "***"
SENSITIVE_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api_key",
        "apikey",
        "api-key",
        "token",
        "access_token",
        "refresh_token",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "cookie",
        "set-cookie",
        "database_url",
        "llm_api_key",
        "plaintext",
    }
)
# One scan per string: a Ctxfy key (the public key id is kept), a bearer token, or the
# password of a user:password@ URL (database and LLM endpoints).
_SECRETS = re.compile(
    r"\b(?P<key>ctxfy_[0-9a-f]{16}_)[0-9A-Za-z]{20,}"
    r"|(?i:\b(?P<bearer>bearer)\s+[A-Za-z0-9._~+/=-]+)"
    r"|(?i:\b(?P<url>[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@)"
)


def _mask(match: re.Match[str]) -> str:
    if match["key"]:
        return match["key"] + MASK
    if match["bearer"]:
        return f"{match['bearer']} {MASK}"
    return f"{match['url']}{MASK}@"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def redact_text(text: str) -> str:
    """``text`` with every credential-looking value masked."""
    return _SECRETS.sub(_mask, text)


def redact_values[V](values: Mapping[str, V]) -> dict[str, V]:
    """``values`` with credentials masked by name and by look, as log lines are."""
    redacted: dict[str, V] = _redact(values)
    return redacted


def _redact(value: Any) -> Any:
    if value is None or isinstance(value, int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: MASK if str(key).lower() in SENSITIVE_NAMES else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    return value


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask credentials by field name (any depth) and by pattern."""
    for key in list(event_dict):
        if key.lower() in SENSITIVE_NAMES:
            event_dict[key] = MASK
        else:
            event_dict[key] = _redact(event_dict[key])
    return event_dict


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def escape_control(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor for console output: CR, LF and ESC cannot split or forge lines.

    (JSON output escapes them already.) A rendered traceback keeps its line breaks.
    """
    for key, value in event_dict.items():
        if isinstance(value, str) and key != "exception":
            event_dict[key] = _CONTROL.sub(_escape, value)
    return event_dict
