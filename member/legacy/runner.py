"""The chunked import driver shared by the CLI: one committed transaction per chunk, then the bind pass.

An import of millions of rows cannot be one transaction; each chunk commits with its checkpoint, so a
crash loses at most the chunk in flight and the next run resumes after the last committed one.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from member.legacy.services.batches import batch_reader, get_batch
from member.legacy.services.binding import bind_batch
from member.legacy.services.copyrows import CopyRenderer
from member.legacy.services.normalise import RowNormaliser
from member.legacy.services.policy import DEFAULT_POLICY, BindPolicy
from member.legacy.services.reader import DEFAULT_CHUNK_ROWS, Chunk
from member.legacy.services.stage import ChunkOutcome, PreparedChunk, apply_prepared, prepare_chunk
from scrm.db import Database

#: Called inside each chunk's transaction, after the chunk is staged and before it commits.
ChunkHook = Callable[[Chunk, ChunkOutcome], None]


@dataclass
class RunResult:
    chunks: int = 0
    rows: int = 0
    inserted: int = 0
    invalid: int = 0
    bind_pass: dict[str, int] = field(default_factory=dict)
    import_s: float = 0.0
    bind_s: float = 0.0

    def add(self, outcome: ChunkOutcome | None) -> None:
        if outcome is None:
            return
        self.chunks += 1
        self.rows += outcome.rows
        self.inserted += outcome.inserted
        self.invalid += outcome.invalid


def _apply(
    db: Database, batch_id: int, prepared: PreparedChunk, on_chunk: ChunkHook | None, at: datetime | None
) -> ChunkOutcome | None:
    with db.transaction() as session:
        outcome = apply_prepared(session, batch_id, prepared, now=at)
        if outcome is not None and on_chunk is not None:
            on_chunk(prepared.chunk, outcome)
    return outcome


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the import loop, restored after.

    A chunk is tens of thousands of small lists and tuples that live until it commits; the collector kept
    re-scanning them (a quarter of the loop's Python CPU) and found nothing: chunk data holds no reference
    cycles, so reference counting frees each chunk when the next replaces it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run_import(
    db: Database,
    batch_id: int,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    policy: BindPolicy = DEFAULT_POLICY,
    on_chunk: ChunkHook | None = None,
    at: datetime | None = None,
) -> RunResult:
    """Import (or resume) a batch from its checkpoint to the end, then bind the members who already verified."""
    result = RunResult()
    started = time.perf_counter()
    with db.transaction() as session:
        batch = get_batch(session, batch_id)
        start_row, start_offset, finished = batch.rows_done, batch.resume_offset, batch.status == "done"
        source, normaliser = batch_reader(batch)
    if not finished:
        # Python reads, normalises and renders chunk n+1 as COPY text while the database stages and commits
        # chunk n: the two run on different cores, and a chunk still commits only after the one before it.
        renderer = None
        if isinstance(normaliser, RowNormaliser) and db.dialect == "postgresql":
            renderer = CopyRenderer(normaliser, batch_id)
        with _cyclic_gc_paused(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="legacy-import") as pool:
            pending: Future[ChunkOutcome | None] | None = None
            for chunk in source.chunks(start_row=start_row, start_offset=start_offset, chunk_rows=chunk_rows):
                prepared = prepare_chunk(chunk, normaliser, renderer=renderer)
                if pending is not None:
                    result.add(pending.result())
                pending = pool.submit(_apply, db, batch_id, prepared, on_chunk, at)
            if pending is not None:
                result.add(pending.result())
    result.import_s = time.perf_counter() - started
    with db.transaction() as session:
        result.bind_pass = bind_batch(session, batch_id, at=at, policy=policy)
    result.bind_s = time.perf_counter() - started - result.import_s
    return result
