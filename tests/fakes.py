"""Honest fakes: real behaviour, with a switch the tests control."""

from collections.abc import Mapping, Sequence
from datetime import datetime

from domain.keys import ApiKeyInfo
from domain.ports import KeyStore, KeyStoreUnavailable


class SwitchableKeyStore:
    """A real key store that a test can take away (``down = True``) and bring back."""

    def __init__(self, inner: KeyStore) -> None:
        self.inner = inner
        self.down = False
        self.gets = 0

    def _check(self) -> None:
        if self.down:
            raise KeyStoreUnavailable("taken away by the test")

    async def start(self) -> None:
        self._check()
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def ping(self) -> None:
        self._check()
        await self.inner.ping()

    async def add(self, info: ApiKeyInfo) -> None:
        self._check()
        await self.inner.add(info)

    async def get(self, key_id: str) -> ApiKeyInfo | None:
        self._check()
        self.gets += 1
        return await self.inner.get(key_id)

    async def list(self, *, user_id: str | None = None) -> Sequence[ApiKeyInfo]:
        self._check()
        return await self.inner.list(user_id=user_id)

    async def revoke(self, key_id: str, at: datetime) -> ApiKeyInfo | None:
        self._check()
        return await self.inner.revoke(key_id, at)

    async def rotate(self, old_key_id: str, new: ApiKeyInfo, old_expires_at: datetime) -> None:
        self._check()
        await self.inner.rotate(old_key_id, new, old_expires_at)

    async def update_hash(self, key_id: str, api_key_hash: str) -> None:
        self._check()
        await self.inner.update_hash(key_id, api_key_hash)

    async def record_usage(self, last_used: Mapping[str, datetime]) -> None:
        self._check()
        await self.inner.record_usage(last_used)
