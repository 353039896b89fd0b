"""The run's questions to the ledger, asked before anything is billed.

For each (item, operation), with the item's content identity:

- the pair's latest entry has this content key: **unchanged**, skipped (tonight's
  output holds only new work);
- another entry has this content key: **reused**: its record is read back (one
  pread or ranged GET), checked, and written for this id with ``reused_from``;
  no call;
- otherwise **new** (the id was never analysed with this operation) or **changed**
  (it was, with other content or other parameters): analysed.

``index_faces`` never reuses across ids: its effect (faces stored under this id's
ExternalImageId) is not in the record, so a copy must be indexed itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from batchrek.call import Operation
from batchrek.ledger._catchup import CatchUp
from batchrek.ledger._identity import Identity
from batchrek.ledger._index import LedgerIndex, Pointer
from batchrek.ledger._journal import LedgerKeys
from batchrek.ledger._keys import content_key, id_key, params_digest
from batchrek.ledger._records import RecordReader
from batchrek.models import Item, Result

__all__ = ["Check", "Ledger", "Verdict"]

_NO_REUSE = frozenset({"index_faces"})


class Verdict(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    REUSED = "reused"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class Check:
    verdict: Verdict
    keys: LedgerKeys
    candidates: tuple[Pointer, ...] = ()


class Ledger:
    """One run's view of the ledger: the loaded index plus this run's counters."""

    def __init__(
        self,
        index: LedgerIndex,
        ops: Sequence[Operation],
        reader: RecordReader | None = None,
    ) -> None:
        self.index = index
        self.reader = reader or RecordReader(None)
        self._params = {op.method: params_digest(op.method, op.params) for op in ops}
        self.counts: Counter[tuple[str, Verdict]] = Counter()
        self.reuse_misses = 0  # a pointer that did not read back as the right record
        self.caught_up = CatchUp()  # what the run indexed from its output before billing

    def params_of(self, method: str) -> str:
        return self._params[method]

    def check(self, op: Operation, item_id: str, identity: Identity) -> Check:
        """The verdict for one pair; counted unless it later turns out otherwise
        (a reuse that fails to read back is recounted by ``reuse``)."""
        keys = LedgerKeys(
            id_key(op.method, item_id),
            content_key(op.method, self._params[op.method], str(identity)),
        )
        latest = self.index.content_of(keys.id_key)
        if latest == keys.content_key:
            return self._counted(op, Check(Verdict.UNCHANGED, keys))
        if op.method not in _NO_REUSE:
            found = self.index.pointers(keys.content_key)
            if found:
                return self._counted(op, Check(Verdict.REUSED, keys, tuple(found)))
        verdict = Verdict.NEW if latest is None else Verdict.CHANGED
        return self._counted(op, Check(verdict, keys))

    def split(
        self, item: Item, ops: Sequence[Operation], identity: Identity
    ) -> tuple[tuple[Operation, ...], dict[str, Check]]:
        """The operations still to do for ``item`` (new, changed or reused) and their
        checks; unchanged ones are left out (the caller counts them as skipped)."""
        todo: list[Operation] = []
        checks: dict[str, Check] = {}
        for op in ops:
            check = self.check(op, item.id, identity)
            if check.verdict is not Verdict.UNCHANGED:
                todo.append(op)
                checks[op.method] = check
        return tuple(todo), checks

    def _counted(self, op: Operation, check: Check) -> Check:
        self.counts[(op.method, check.verdict)] += 1
        return check

    async def reuse(
        self, check: Check, item: Item, op: Operation, identity: Identity
    ) -> Result | None:
        """The earlier result copied for ``item``, or None (then the pair is analysed,
        and counted as new or changed instead of reused)."""
        for pointer in check.candidates:
            record = await self.reader.read(pointer)
            if record is not None and self._matches(record, op, identity):
                return _reused(record, pointer, item, op, identity, self._params[op.method])
        self.reuse_misses += 1
        self.counts[(op.method, Verdict.REUSED)] -= 1
        latest = self.index.content_of(check.keys.id_key)
        self.counts[(op.method, Verdict.NEW if latest is None else Verdict.CHANGED)] += 1
        return None

    def _matches(self, record: dict[str, Any], op: Operation, identity: Identity) -> bool:
        return (
            record.get("status") == "ok"
            and record.get("operation") == op.method
            and record.get("params_digest") == self._params[op.method]
            and record.get("content") == str(identity)
        )

    def stamp(self, result: Result, identity: Identity) -> Result:
        """The result with what keys it in the ledger: its content identity and the
        parameters digest (read back to check a reuse, and by ``batchrek export``)."""
        extra = {
            **result.extra,
            "content": str(identity),
            "params_digest": self._params[result.operation],
        }
        return replace(result, extra=extra)

    def keys_of(self, result: Result) -> LedgerKeys | None:
        """The entry a written record earns: only ok results that carry an identity.
        Errors are left out: a refused call is not billed, and a fix (permissions,
        settings) should take effect the next night without clearing the ledger."""
        if result.status != "ok":
            return None
        content = result.extra.get("content")
        params = result.extra.get("params_digest")
        if not isinstance(content, str) or not isinstance(params, str):
            return None
        return LedgerKeys(
            id_key(result.operation, result.id), content_key(result.operation, params, content)
        )

    def summary(self) -> dict[str, Any]:
        """Pairs by verdict, per operation and in all (for the run's summary)."""
        total: Counter[str] = Counter()
        per_op: dict[str, dict[str, int]] = {}
        for (method, verdict), n in sorted(self.counts.items()):
            total[verdict.value] += n
            per_op.setdefault(method, {})[verdict.value] = n
        return {
            **{v.value: total.get(v.value, 0) for v in Verdict},
            "by_operation": per_op,
            "entries_loaded": len(self.index),
            "reuse_misses": self.reuse_misses,
            "record_bytes_read": self.reader.bytes_read,
            **self.caught_up.summary(),
        }

    def __repr__(self) -> str:
        return f"Ledger({self.index!r}, checks={sum(self.counts.values())})"


def _reused(
    record: dict[str, Any],
    pointer: Pointer,
    item: Item,
    op: Operation,
    identity: Identity,
    params: str,
) -> Result:
    return Result(
        id=item.id,
        source=str(item.source),
        operation=op.method,
        status="ok",
        input=record.get("input", "none"),
        attempts=0,
        latency_ms=0.0,
        response=record.get("response"),
        meta=item.meta,
        transcode=record.get("transcode"),
        extra={
            "content": str(identity),
            "params_digest": params,
            "reused_from": {
                "id": record.get("id"),
                "output": pointer.output,
                "offset": pointer.offset,
            },
        },
    )
