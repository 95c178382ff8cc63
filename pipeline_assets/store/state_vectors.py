"""State-vector rows and order-book snapshots in the warehouse.

``ml_state_vector_rows`` holds one un-normalised raw row per closed hour and layout (float64,
little-endian, the layout's ``raw_columns``); windows are assembled and normalised on read, so
storage grows by 11 + 40 n floats an hour instead of 168 x 768."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd
import psycopg

from pipeline_assets.state_vector import StateVectorBuilder

ORDERBOOK_COLUMNS = ("symbol", "venue", "snapshot_at", "bid_prices", "bid_sizes", "ask_prices", "ask_sizes", "source")


def register_layout(conn: psycopg.Connection, builder: StateVectorBuilder) -> str:
    spec, config = builder.layout_spec, builder.config
    conn.execute(
        "INSERT INTO state_vector_layouts (layout_id, version, symbols, raw_columns, columns, config) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (layout_id) DO NOTHING",
        (
            spec.layout_id,
            spec.version,
            list(spec.symbols),
            list(spec.raw_columns),
            list(spec.columns),
            json.dumps(
                {
                    "window_hours": config.window_hours,
                    "normalize_ohlcv": config.normalize_ohlcv,
                    "normalize_indicators": config.normalize_indicators,
                    "fill_method": config.fill_method,
                    "reference": config.reference,
                }
            ),
        ),
    )
    return spec.layout_id


def _stamp(hours: np.ndarray) -> list[datetime]:
    return list(pd.to_datetime(np.asarray(hours, dtype=np.int64) * 3600, unit="s", utc=True).to_pydatetime())


def write_rows(
    conn: psycopg.Connection,
    layout_id: str,
    hours: np.ndarray,
    rows: np.ndarray,
    missing_symbols: Sequence[Sequence[str]],
    book_symbols: Sequence[Sequence[str]],
) -> int:
    """Replace the rows of [hours[0], hours[-1]] for this layout (one statement pair, inside the
    caller's transaction)."""
    if len(hours) == 0:
        return 0
    rows = np.ascontiguousarray(rows, dtype="<f8")
    stamps = _stamp(hours)
    conn.execute(
        "DELETE FROM ml_state_vector_rows WHERE layout_id = %s AND ts >= %s AND ts <= %s",
        (layout_id, stamps[0], stamps[-1]),
    )
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY ml_state_vector_rows (layout_id, ts, raw_row, missing_symbols, book_symbols) FROM STDIN"
        ) as copy,
    ):
        for i, stamp in enumerate(stamps):
            copy.write_row((layout_id, stamp, rows[i].tobytes(), list(missing_symbols[i]), list(book_symbols[i])))
    return len(stamps)


def read_rows(
    conn: psycopg.Connection, layout_id: str, start: datetime, end: datetime, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """(hours since the epoch, raw rows (n, width) float64) for ts in [start, end), ordered."""
    with conn.cursor(binary=True) as cur:
        cur.execute(
            "SELECT (extract(epoch FROM ts) / 3600)::bigint, raw_row FROM ml_state_vector_rows "
            "WHERE layout_id = %s AND ts >= %s AND ts < %s ORDER BY ts",
            (layout_id, start, end),
        )
        fetched = cur.fetchall()
    hours = np.fromiter((r[0] for r in fetched), dtype=np.int64, count=len(fetched))
    blob = b"".join(bytes(r[1]) for r in fetched)
    rows = np.frombuffer(blob, dtype="<f8").reshape(len(fetched), width) if fetched else np.empty((0, width))
    return hours, rows


class MissingStateRows(LookupError):
    pass


def read_vectors(
    conn: psycopg.Connection, builder: StateVectorBuilder, start: datetime, end: datetime
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors for every closed hour with ts in [start, end): (hours, (n, window, 768) float32),
    assembled from stored raw rows in one query. A window with a missing stored hour raises
    MissingStateRows naming it."""
    window = builder.config.window_hours
    first = pd.Timestamp(start) - pd.Timedelta(hours=window - 1)
    hours, rows = read_rows(conn, builder.layout_id, first.to_pydatetime(), end, builder.layout_spec.raw_width)
    wanted = np.arange(
        int(pd.Timestamp(start).value // 3_600_000_000_000), int(pd.Timestamp(end).value // 3_600_000_000_000)
    )
    index = {int(h): i for i, h in enumerate(hours)}
    ends = []
    for hour in wanted:
        at = index.get(int(hour))
        if at is None or at - window + 1 < 0 or hours[at - window + 1] != hour - window + 1:
            gap = next((h for h in range(int(hour) - window + 1, int(hour) + 1) if h not in index), None)
            label = pd.Timestamp(gap * 3600, unit="s", tz="UTC").isoformat() if gap is not None else "?"
            raise MissingStateRows(
                f"state vector for {pd.Timestamp(int(hour) * 3600, unit='s', tz='UTC').isoformat()} needs the stored "
                "row "
                f"of {label} (layout {builder.layout_id}); materialise ml_state_vectors for that day"
            )
        ends.append(at)
    return wanted, builder.normalise_windows(rows, np.asarray(ends, dtype=np.int64))


def write_orderbook(
    conn: psycopg.Connection, snapshots: pd.DataFrame, start: datetime, end: datetime, source: str, replace: bool = True
) -> int:
    """Replace this source's snapshots with snapshot_at in [start, end) by ``snapshots`` (a
    re-generable source), or with ``replace=False`` add them to what was collected before (a live
    book is seen once; a snapshot already stored is kept). Returns the rows written."""
    symbols = sorted(set(snapshots["symbol"])) if len(snapshots) else []
    if replace:
        conn.execute(
            "DELETE FROM raw_orderbook WHERE source = %s AND snapshot_at >= %s AND snapshot_at < %s "
            "AND symbol = ANY(%s)",
            (source, start, end, symbols),
        )
    if snapshots.empty:
        return 0
    target = "raw_orderbook"
    if not replace:
        target = "raw_orderbook_incoming"
        conn.execute(f"CREATE TEMP TABLE {target} (LIKE raw_orderbook INCLUDING DEFAULTS) ON COMMIT DROP")
    with conn.cursor() as cur, cur.copy(f"COPY {target} ({', '.join(ORDERBOOK_COLUMNS)}) FROM STDIN") as copy:
        copy.write(_orderbook_copy_text(snapshots, source))
    if replace:
        return len(snapshots)
    inserted = conn.execute(
        f"INSERT INTO raw_orderbook SELECT * FROM {target} ON CONFLICT (symbol, venue, snapshot_at) DO NOTHING"
    ).rowcount
    conn.execute(f"DROP TABLE {target}")
    return inserted


_COPY_UNSAFE = re.compile(r"[\t\n\r\\]")


def _float_array(values) -> str:
    """A float8[] in COPY text format; repr() of a float is its shortest exact form, so the stored
    values equal the input bit for bit. Non-finite values are refused here, not stored."""
    floats = [float(v) for v in values]
    if not all(math.isfinite(v) for v in floats):
        raise ValueError(f"order book level is not finite: {floats}")
    return "{" + ",".join(map(repr, floats)) + "}"


def _orderbook_copy_text(snapshots: pd.DataFrame, source: str) -> bytes:
    """The snapshots as COPY text rows (one buffer instead of a dumper call per array element)."""
    for column, values in (("symbol", snapshots["symbol"]), ("venue", snapshots["venue"]), ("source", [source])):
        bad = [v for v in pd.unique(pd.Series(values, dtype=object)) if _COPY_UNSAFE.search(str(v))]
        if bad:
            raise ValueError(f"raw_orderbook {column} {bad[0]!r} holds a tab, newline or backslash")
    times = pd.to_datetime(snapshots["snapshot_at"], utc=True).dt.strftime("%Y-%m-%d %H:%M:%S.%f+00")
    lines = [
        "\t".join((symbol, venue, at, _float_array(bp), _float_array(bs), _float_array(ap), _float_array(asz), source))
        for symbol, venue, at, bp, bs, ap, asz in zip(
            snapshots["symbol"],
            snapshots["venue"],
            times,
            snapshots["bid_prices"],
            snapshots["bid_sizes"],
            snapshots["ask_prices"],
            snapshots["ask_sizes"],
            strict=True,
        )
    ]
    return ("\n".join(lines) + "\n").encode()


def read_orderbook(
    conn: psycopg.Connection, symbols: Sequence[str], start: datetime, end: datetime
) -> dict[str, list[dict]]:
    """Snapshots per symbol with snapshot_at in [start, end), in the builder's format."""
    out: dict[str, list[dict]] = {s: [] for s in symbols}
    for symbol, at, bp, bs, ap, asz in conn.execute(
        "SELECT symbol, snapshot_at, bid_prices, bid_sizes, ask_prices, ask_sizes FROM raw_orderbook "
        "WHERE symbol = ANY(%s) AND snapshot_at >= %s AND snapshot_at < %s ORDER BY symbol, snapshot_at",
        (list(symbols), start, end),
    ):
        out[symbol].append(
            {
                "bids": list(zip(bp, bs, strict=True)),
                "asks": list(zip(ap, asz, strict=True)),
                "timestamp": pd.Timestamp(at),
            }
        )
    return out
