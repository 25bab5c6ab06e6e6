"""Argon2id hashing of key secrets, with argon2-cffi directly."""

from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


@dataclass(frozen=True, slots=True)
class Argon2Parameters:
    """Cost parameters; the defaults are OWASP's minimum for argon2id."""

    time_cost: int = 2
    memory_cost_kib: int = 19_456
    parallelism: int = 1


class Argon2KeyHasher:
    """Hashes and verifies key secrets. Every call is CPU-bound: run it off the event loop."""

    def __init__(self, parameters: Argon2Parameters = Argon2Parameters()) -> None:
        self._hasher = PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_cost_kib,
            parallelism=parameters.parallelism,
            type=Type.ID,
        )

    def hash(self, secret: str) -> str:
        """The encoded argon2id hash of ``secret`` (parameters and salt included)."""
        return self._hasher.hash(secret)

    def verify(self, encoded: str, secret: str) -> bool:
        """Whether ``secret`` matches ``encoded``; a corrupt hash never matches."""
        try:
            return self._hasher.verify(encoded, secret)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, encoded: str) -> bool:
        """Whether ``encoded`` was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(encoded)
        except InvalidHashError:
            return True
