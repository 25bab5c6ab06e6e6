"""API keys: their format, scopes and lifecycle, as pure values and functions.

A key reads ``ctxfy_<key id>_<secret><checksum>``: a recognisable prefix for secret
scanners, a public 16-hex-digit key id (what the store is looked up by), a 43-character
base62 secret (256 bits from ``secrets``) and a 6-character base62 CRC32 of everything
before it, so a mistyped or truncated key is rejected without any lookup.
"""

import re
import secrets
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain.errors import CtxfyError
from domain.text import is_safe_name

PREFIX = "ctxfy_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_ID_LENGTH = 16
SECRET_LENGTH = 43  # 43 base62 characters carry 256.03 bits
CHECKSUM_LENGTH = 6  # 62**6 > 2**32
KEY_PATTERN = re.compile(
    rf"{PREFIX}(?P<key_id>[0-9a-f]{{{KEY_ID_LENGTH}}})_"
    rf"(?P<secret>[0-9A-Za-z]{{{SECRET_LENGTH}}})(?P<checksum>[0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)
KEY_LENGTH = len(PREFIX) + KEY_ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH
NAME_MAX_LENGTH = 100
USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9._@:+-]{1,128}$")


LIFETIME_NOT_POSITIVE = "a key's lifetime must be positive"


class MalformedKey(CtxfyError):
    """The text presented is not a well-formed Ctxfy key (shape or checksum)."""

    code = "malformed_key"


class KeyLifecycleError(CtxfyError):
    """A key operation is not allowed in the key's current state."""

    code = "key_lifecycle_error"


class KeyConflict(CtxfyError):
    """The key's state rules the operation out: it is revoked, expired or already rotated."""

    code = "key_conflict"


class InvalidKeyName(CtxfyError):
    """A key's name would print as something other than what it holds."""

    code = "invalid_key_name"


class KeyNotFound(CtxfyError):
    """No key has that id."""

    code = "key_not_found"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"No key with id {key_id!r}")
        self.key_id = key_id


class ScopeNotGrantable(CtxfyError):
    """A key tried to create a key broader than itself."""

    code = "insufficient_scope"

    def __init__(self, scope: "Scope") -> None:
        super().__init__(f"A key cannot create a key with a broader scope ({scope.value!r})")
        self.scope = scope


class Scope(StrEnum):
    """What a key may do; each scope includes the ones below it."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Position in ``read`` ⊂ ``write`` ⊂ ``admin``."""
        return _RANKS[self]

    def includes(self, needed: "Scope") -> bool:
        """Whether a key with this scope may do what ``needed`` allows."""
        return self.rank >= needed.rank

    def granted(self) -> tuple["Scope", ...]:
        """Every scope this one includes, itself last (``write`` → read, write)."""
        return tuple(scope for scope in Scope if self.includes(scope))


_RANKS = {Scope.READ: 0, Scope.WRITE: 1, Scope.ADMIN: 2}


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def checksum(body: str) -> str:
    """The base62 CRC32 that ends a key whose other characters are ``body``."""
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """A key as a client sent it, after its format and checksum were checked."""

    key_id: str
    secret: str

    @property
    def plaintext(self) -> str:
        """The full key text."""
        body = f"{PREFIX}{self.key_id}_{self.secret}"
        return body + checksum(body)

    def __repr__(self) -> str:
        return f"PresentedKey(key_id={self.key_id!r}, secret='***')"


def parse_key(text: str) -> PresentedKey:
    """Check a presented key's shape and checksum; nothing is looked up.

    Raises:
        MalformedKey: wrong length, prefix, alphabet or checksum.
    """
    if len(text) != KEY_LENGTH:
        raise MalformedKey("wrong length")
    match = KEY_PATTERN.fullmatch(text)
    if match is None:
        raise MalformedKey("wrong shape")
    if not secrets.compare_digest(checksum(text[:-CHECKSUM_LENGTH]), match["checksum"]):
        raise MalformedKey("bad checksum")
    return PresentedKey(key_id=match["key_id"], secret=match["secret"])


def generate_key() -> PresentedKey:
    """A new random key: 64-bit public id, 256-bit secret."""
    key_id = secrets.token_hex(KEY_ID_LENGTH // 2)
    secret = "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))
    return PresentedKey(key_id=key_id, secret=secret)


class KeyStatus(StrEnum):
    """Whether a stored key can be used right now."""

    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyInfo:
    """A stored key: who owns it, what it may do, and its lifecycle. Never the secret."""

    key_id: str
    api_key_hash: str
    user_id: str
    name: str
    scope: Scope
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    replaced_by: str | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(rf"[0-9a-f]{{{KEY_ID_LENGTH}}}", self.key_id):
            raise ValueError("key id must be 16 lowercase hex digits")
        if not self.api_key_hash:
            raise ValueError("a stored key needs its hash")
        if not USER_ID_PATTERN.fullmatch(self.user_id):
            raise ValueError("user id must be 1-128 characters of A-Z a-z 0-9 . _ @ : + -")
        if len(self.name) > NAME_MAX_LENGTH:
            raise ValueError(f"name must be at most {NAME_MAX_LENGTH} characters")
        for label, moment in (
            ("created_at", self.created_at),
            ("expires_at", self.expires_at),
            ("last_used_at", self.last_used_at),
            ("revoked_at", self.revoked_at),
        ):
            if moment is not None and moment.tzinfo is None:
                raise ValueError(f"{label} must be timezone-aware")
        # Equal is a key rotated without grace in the instant it was made: never active.
        if self.expires_at < self.created_at:
            raise ValueError("a key must not expire before it is created")

    def status(self, now: datetime) -> KeyStatus:
        """Revoked beats expired; a key is active until its expiry instant."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return KeyStatus.REVOKED
        if now >= self.expires_at:
            return KeyStatus.EXPIRED
        return KeyStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the identity every surface authorizes against."""

    key_id: str
    user_id: str
    scope: Scope

    def may(self, needed: Scope) -> bool:
        """Whether this principal holds ``needed`` (or a broader scope)."""
        return self.scope.includes(needed)


def new_key_info(
    *,
    key: PresentedKey,
    api_key_hash: str,
    user_id: str,
    name: str,
    scope: Scope,
    now: datetime,
    lifetime: timedelta,
    max_lifetime: timedelta,
) -> ApiKeyInfo:
    """The stored record of a freshly generated key.

    Raises:
        KeyLifecycleError: the lifetime is not positive or exceeds the maximum.
        InvalidKeyName: the name has control or bidirectional-override characters.
    """
    if not is_safe_name(name):
        raise InvalidKeyName("a key name may not contain control or bidirectional characters")
    check_lifetime(lifetime, max_lifetime)
    return ApiKeyInfo(
        key_id=key.key_id,
        api_key_hash=api_key_hash,
        user_id=user_id,
        name=name,
        scope=scope,
        created_at=now,
        expires_at=now + lifetime,
    )


def check_lifetime(lifetime: timedelta, max_lifetime: timedelta) -> None:
    """The one rule, and wording, for a new key's lifetime on every surface.

    Raises:
        KeyLifecycleError: the lifetime is not positive or exceeds the maximum.
    """
    if lifetime <= timedelta(0):
        raise KeyLifecycleError(LIFETIME_NOT_POSITIVE)
    if lifetime > max_lifetime:
        raise KeyLifecycleError(
            f"a key may live at most {max_lifetime.days} days; asked for {lifetime.days}"
        )


def may_grant(granter: Principal | None, scope: Scope) -> bool:
    """Whether ``granter`` may create a key of ``scope``; ``None`` is the operator's CLI."""
    return granter is None or granter.scope.includes(scope)


def rotated_already(key_id: str, successor: str) -> str:
    """The refusal to rotate a key a second time: rotate its successor instead."""
    return f"key {key_id} was already rotated; its successor is {successor}"


def rotation_deadline(old: ApiKeyInfo, *, now: datetime, grace: timedelta) -> datetime:
    """When a rotated key stops working: after the grace period, never later than before.

    Raises:
        KeyLifecycleError: the grace period is negative.
        KeyConflict: the key is not active, or was rotated already (it is in its grace period).
    """
    if grace < timedelta(0):
        raise KeyLifecycleError("grace period must not be negative")
    if old.status(now) is not KeyStatus.ACTIVE:
        raise KeyConflict(f"only an active key can be rotated; this one is {old.status(now)}")
    if old.replaced_by is not None:
        raise KeyConflict(rotated_already(old.key_id, old.replaced_by))
    # Never before its creation (a clock that stepped back): every read checks that.
    return max(min(old.expires_at, now + grace), old.created_at)
