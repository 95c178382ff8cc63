"""Writing a year of hourly bars plus every derivatives feed for 10 symbols on TimescaleDB: the
project's write path (store.frames.upsert_frame) against a plain binary COPY into the same
hypertables (raw_ohlcv, raw_funding_rates, raw_open_interest, raw_long_short_ratio,
raw_liquidations; the feeds from the synthetic market).

    python benchmarks/bench_timescale_write.py [--repeats 3]

Starts its own embedded PostgreSQL with TimescaleDB preloaded (built by `make install`) in a
temporary directory, migrates a fresh database, prints a markdown table with rows/s and the ratio
against plain COPY measured in the same run, and deletes the server. First writes go into an empty
table; rewrites write the same keys again with every close changed (so every row is updated).
The reference for both ratios is plain COPY into the empty table (a COPY cannot rewrite keys).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from psycopg import sql

from pipeline_assets.local_db import start_embedded
from pipeline_assets.store.db import connect
from pipeline_assets.store.frames import upsert_frame
from pipeline_assets.store.migrate import migrate
from pipeline_assets.timescale_build import build

SYMBOLS = [f"SYM{i:02d}USDT" for i in range(10)]
HOURS = 365 * 24


def year_of_bars() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frames = []
    for symbol in SYMBOLS:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.005, HOURS)))
        frames.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "ts": pd.date_range("2023-01-01", periods=HOURS, freq="h", tz="UTC"),
                    "open": close,
                    "high": close * 1.001,
                    "low": close * 0.999,
                    "close": close,
                    "volume": rng.uniform(1, 10, HOURS),
                    "source": "bench",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def feeds() -> list[tuple[str, pd.DataFrame, list[str], str]]:
    """(table, a year of rows, key, the value column a rewrite changes) for each feed."""
    from datetime import UTC, datetime

    from pipeline_assets.contracts.derivatives import DERIVATIVE_CONTRACTS
    from pipeline_assets.sources.derivatives import SyntheticDerivatives
    from pipeline_assets.sources.synthetic import SyntheticMarket

    source = SyntheticDerivatives(SyntheticMarket())
    start, end = datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    changed = {"funding": "funding_rate", "open_interest": "open_interest", "long_short_ratio": "long_short_ratio",
               "liquidations": "size"}  # fmt: skip
    out = []
    for feed, contract in DERIVATIVE_CONTRACTS.items():
        frame = pd.concat([getattr(source, feed)(s, start, end) for s in SYMBOLS], ignore_index=True)
        frame = frame.assign(source="bench")[[c.name for c in contract.columns]]
        out.append((contract.table, frame, list(contract.key), changed[feed]))
    return out


PG_TYPES = {"text": "text", "timestamp with time zone": "timestamptz", "double precision": "float8", "integer": "int4"}


def empty(url: str, tables) -> None:
    with connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(tables)}")


def plain_copy(url: str, table: str, frame: pd.DataFrame) -> float:
    columns = list(frame.columns)
    with connect(url) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s", (table,)
            ).fetchall()
        )
    rows = list(
        zip(
            *(
                frame[c].dt.to_pydatetime() if str(frame[c].dtype).startswith("datetime") else frame[c].tolist()
                for c in columns
            ),
            strict=True,
        )
    )
    started = time.perf_counter()
    with connect(url) as conn, conn.transaction(), conn.cursor() as cur:
        stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with cur.copy(stmt) as copy:
            copy.set_types([PG_TYPES[types[c]] for c in columns])
            for row in rows:
                copy.write_row(row)
    return time.perf_counter() - started


def project_write(url: str, table: str, frame: pd.DataFrame, key: list[str]) -> float:
    started = time.perf_counter()
    with connect(url) as conn, conn.transaction():
        upsert_frame(conn, table, frame, key)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    build()
    bars = year_of_bars()
    work = [("raw_ohlcv", bars, ["symbol", "ts"], "close"), *feeds()]
    tables = [t for t, *_ in work]
    with tempfile.TemporaryDirectory(prefix="bench_tsdb_") as tmp:
        server = start_embedded(Path(tmp) / "pgdata", cleanup_mode="delete", timescale=True)
        try:
            url = server.get_uri()
            report = migrate(url)
            assert report.timescaledb, "TimescaleDB is not usable on the benchmark server"
            timings = {(t, k): [] for t in tables for k in ("copy", "first", "rewrite")}
            for _ in range(args.repeats):
                empty(url, tables)
                for table, frame, _, _ in work:
                    timings[(table, "copy")].append(plain_copy(url, table, frame))
                empty(url, tables)
                for table, frame, key, column in work:
                    timings[(table, "first")].append(project_write(url, table, frame, key))
                    changed = frame.assign(**{column: frame[column] * 1.001})
                    timings[(table, "rewrite")].append(project_write(url, table, changed, key))
            with connect(url) as conn:
                for table, frame, _, _ in work:
                    (stored,) = conn.execute(f"SELECT count(*) FROM {table} WHERE source = 'bench'").fetchone()
                    assert stored == len(frame), (table, stored, len(frame))
        finally:
            server.cleanup()
    print(f"a year for {len(SYMBOLS)} symbols on TimescaleDB, median of {args.repeats}\n")
    header = "| table | rows | plain binary COPY rows/s | first write rows/s (ratio) | rewrite rows/s (ratio) |"
    print(header)
    print("|---|---:|---:|---:|---:|")
    totals = {"copy": 0.0, "first": 0.0, "rewrite": 0.0}
    rows_total = 0
    for table, frame, _, _ in work:
        n = len(frame)
        rows_total += n
        med = {k: statistics.median(timings[(table, k)]) for k in totals}
        for k in totals:
            totals[k] += med[k]
        ref = n / med["copy"]
        print(
            f"| {table} | {n:,} | {ref:,.0f} | {n / med['first']:,.0f} ({n / med['first'] / ref:.2f}) | "
            f"{n / med['rewrite']:,.0f} ({n / med['rewrite'] / ref:.2f}) |"
        )
    ref = rows_total / totals["copy"]
    print(
        f"| all | {rows_total:,} | {ref:,.0f} | {rows_total / totals['first']:,.0f} "
        f"({rows_total / totals['first'] / ref:.2f}) | {rows_total / totals['rewrite']:,.0f} "
        f"({rows_total / totals['rewrite'] / ref:.2f}) |"
    )


if __name__ == "__main__":
    main()
