"""Keeping a record of every generation without ever costing the generation its answer.

``GenerationRecorder.keep`` writes one record through the ``GenerationRecords`` port under
the operator's policy. It never raises: a store that fails, or takes longer than
``write_timeout`` seconds, is logged and counted (``ctxfy_generation_records_total``) and
the caller returns its document anyway; a slow write still finishes in the background (the
store's operations are not cancelled). Arguments and documents are redacted like log lines
first, so a credential pasted into a prompt argument is never stored.
"""

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import anyio
import structlog

from domain.generation_records import GenerationRecord, RecordPolicy, new_record_id
from domain.ports import GenerationRecords, KeyStoreUnavailable
from infrastructure.metrics import Metrics
from infrastructure.redaction import redact_text, redact_values

logger = structlog.get_logger(__name__)


def exposed_fields(record: GenerationRecord) -> dict[str, Any]:
    """``record`` as every interface shows it (REST, MCP, the CLI): its id is the
    ``generation_id`` a generation answered with."""
    values = record.field_values()
    return {"generation_id": values.pop("record_id"), **values}


WRITE_TIMEOUT_S = 1.0


class GenerationRecorder:
    """Writes generation records under a policy, off the answer's critical path."""

    def __init__(
        self,
        records: GenerationRecords | None,
        *,
        policy: RecordPolicy,
        metrics: Metrics,
        now: Callable[[], datetime],
        write_timeout: float = WRITE_TIMEOUT_S,
    ) -> None:
        # Kept for reading and purging even when the policy writes nothing new.
        self.records = records
        self.policy = policy if records is not None else RecordPolicy.OFF
        self._metrics = metrics
        self._now = now
        self._write_timeout = write_timeout

    @property
    def enabled(self) -> bool:
        """Whether new records are written at all."""
        return self.policy is not RecordPolicy.OFF

    def new_id(self) -> str:
        """An id for the record of a generation that is starting now."""
        return new_record_id(self._now())

    def now(self) -> datetime:
        """The instant a record is stamped with."""
        return self._now()

    async def keep(self, record: GenerationRecord) -> bool:
        """Write what the policy keeps of ``record``; whether it was written. Never raises."""
        kept = record.kept_under(self.policy)
        if kept is None or self.records is None:
            self._metrics.generation_recorded("skipped")
            return False
        if kept.arguments is not None or kept.document is not None:
            kept = _redacted(kept)
        try:
            with anyio.fail_after(self._write_timeout):
                await self.records.add(kept)
        except (KeyStoreUnavailable, TimeoutError) as exc:
            self._metrics.generation_recorded("failed")
            logger.warning(
                "generation_record_failed",
                record_id=kept.record_id,
                prompt=kept.prompt,
                error=type(exc).__name__,
                detail=str(exc) or f"slower than {self._write_timeout:g} s",
            )
            return False
        self._metrics.generation_recorded("written")
        return True

    async def purge(self, retention: timedelta) -> int:
        """Delete the records older than ``retention``; how many went (0 if it failed)."""
        if self.records is None:
            return 0
        try:
            deleted = await self.records.purge(self._now() - retention)
        except KeyStoreUnavailable as exc:
            logger.warning("generation_records_purge_failed", error=str(exc))
            return 0
        if deleted:
            logger.info("generation_records_purged", deleted=deleted, retention=str(retention))
        return deleted

    async def purge_every(self, retention: timedelta, seconds: float) -> None:
        """``purge`` at once and then every ``seconds``, forever (a background task)."""
        while True:
            await self.purge(retention)
            await anyio.sleep(seconds)


def _redacted(record: GenerationRecord) -> GenerationRecord:
    return replace(
        record,
        arguments=redact_values(record.arguments) if record.arguments is not None else None,
        document=redact_text(record.document) if record.document is not None else None,
    )
