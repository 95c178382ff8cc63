"""Named session-level advisory locks: one holder at a time across processes and machines."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pipeline_assets.store.db import connect


class LockBusyError(RuntimeError):
    """Another process holds the lock and ``wait`` was False."""


@contextmanager
def exclusive(database_url: str, name: str, wait: bool = True) -> Iterator[None]:
    """Hold the advisory lock ``name`` on a dedicated connection for the duration of the block.
    The lock is released when the block ends or the connection dies (a killed run frees it)."""
    with connect(database_url, autocommit=True) as conn:
        if wait:
            conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (name,))
        else:
            (acquired,) = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (name,)).fetchone()
            if not acquired:
                raise LockBusyError(f"lock {name!r} is held by another process")
        try:
            yield
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (name,))
