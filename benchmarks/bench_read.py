"""Reading hourly bars back into DataFrames: read_frame beside Arrow-native reads, in one run.

PIPELINE_BENCH_DATABASE_URL=postgresql://.../scratch python benchmarks/bench_read.py [rows ...]

Creates the table ``bench_read_bars`` (symbol text, ts timestamptz, five float8) in the scratch
database with 300,000 and 1,000,000 rows (or the counts given), reads it back ordered by
(symbol, ts) as the warehouse reads, and in table order (no server sort: the client's share
shows), and drops the table at the end. Timed side by side, interleaved, best of
``PIPELINE_BENCH_REPEATS`` (default 5):

- ``read_frame``: COPY ... TO STDOUT (FORMAT BINARY) decoded with numpy into a pandas frame;
- Arrow-native: the same query through COPY ... (FORMAT CSV) into a pyarrow Table (no pandas);
- ADBC: adbc-driver-postgresql's fetch_arrow_table, when that package is installed (it is not a
  dependency: the row says so when it is missing);
- the previous list-based path (tuples, then a column per list), best of 2.

Prints rows/s per reader and read_frame's speed as a fraction of the Arrow-native read's.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import pyarrow as pa
import pyarrow.csv as pa_csv

from pipeline_assets.store.db import connect
from pipeline_assets.store.frames import _read_frame_rows, read_frame

TABLE = "bench_read_bars"
COLUMNS = f"SELECT symbol, ts, open, high, low, close, volume FROM {TABLE}"
# ordered as the warehouse reads; in table order, the server's sort is gone and the client's work shows
QUERIES = {"ordered": f"{COLUMNS} ORDER BY symbol, ts", "table order": COLUMNS}
NAMES = ["symbol", "ts", "open", "high", "low", "close", "volume"]
SYMBOLS = [
    "BTCUSDT",
    "ETHUSDT",
    "SOLUSDT",
    "BNBUSDT",
    "XRPUSDT",
    "DOGEUSDT",
    "ADAUSDT",
    "AVAXUSDT",
    "LINKUSDT",
    "DOTUSDT",
]


def arrow_native(conn, query: str) -> pa.Table:
    """COPY into pyarrow's CSV reader with the column types given: an Arrow Table, nothing more."""
    buffer = bytearray()
    with conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
        for chunk in copy:
            buffer += chunk
    types = {"symbol": pa.string(), "ts": pa.timestamp("us", tz="UTC"), **{n: pa.float64() for n in NAMES[2:]}}
    return pa_csv.read_csv(
        pa.py_buffer(buffer),
        read_options=pa_csv.ReadOptions(column_names=NAMES),
        convert_options=pa_csv.ConvertOptions(column_types=types),
    )


def adbc_reader(url: str) -> Callable[[str], object] | None:
    try:
        import adbc_driver_postgresql.dbapi as adbc
    except ImportError:
        return None

    def read(query: str):
        with adbc.connect(url) as conn, conn.cursor() as cur:
            cur.execute(query)
            return cur.fetch_arrow_table()

    return read


def create_bars(conn, rows: int) -> None:
    """Hourly bars of ten symbols (rows / 10 hours each) with random prices."""
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    conn.execute(
        f"CREATE TABLE {TABLE} (symbol text NOT NULL, ts timestamptz NOT NULL, open float8, high float8, "
        "low float8, close float8, volume float8)"
    )
    conn.execute(
        f"INSERT INTO {TABLE} SELECT (%s::text[])[1 + g %% 10], "
        "timestamptz '2015-01-01' + (g / 10) * interval '1 hour', random(), random(), random(), random(), "
        "random() * 1000 FROM generate_series(0, %s - 1) g",
        (SYMBOLS, rows),
    )
    conn.execute(f"ANALYZE {TABLE}")
    conn.commit()


def best_of(readers: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, int]]:
    """Best wall time and row count per reader, the readers taking turns (the machine's load
    falls on all of them alike)."""
    times: dict[str, float] = {}
    counts: dict[str, int] = {}
    for _ in range(repeats):
        for name, read in readers.items():
            started = time.perf_counter()
            result = read()
            elapsed = time.perf_counter() - started
            times[name] = min(times.get(name, elapsed), elapsed)
            counts[name] = len(result) if not isinstance(result, pa.Table) else result.num_rows
    return {name: (times[name], counts[name]) for name in readers}


def main() -> None:
    url = os.environ.get("PIPELINE_BENCH_DATABASE_URL")
    if not url:
        raise SystemExit("set PIPELINE_BENCH_DATABASE_URL to a scratch database")
    sizes = [int(a) for a in sys.argv[1:]] or [300_000, 1_000_000]
    repeats = int(os.environ.get("PIPELINE_BENCH_REPEATS", "5"))
    adbc = adbc_reader(url)
    adbc_state = "installed" if adbc else "adbc-driver-postgresql not installed"
    print(f"{COLUMNS} [ORDER BY symbol, ts]; best of {repeats} (row path: best of 2); ADBC: {adbc_state}")
    print(
        "| rows | query | read_frame s | rows/s | Arrow-native COPY s | rows/s | read_frame / Arrow speed "
        "| ADBC s | previous row path s | rows/s |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with connect(url, statement_timeout_s=0) as conn:
        try:
            for rows in sizes:
                create_bars(conn, rows)
                for label, query in QUERIES.items():
                    readers = {
                        "read_frame": lambda q=query: read_frame(conn, q),
                        "arrow": lambda q=query: arrow_native(conn, q),
                    }
                    if adbc:
                        readers["adbc"] = lambda q=query: adbc(q)
                    fast = best_of(readers, repeats)
                    old = best_of({"rows": lambda q=query: _read_frame_rows(conn, q)}, 2)["rows"]
                    for name, (_, count) in {**fast, "rows": old}.items():
                        if count != rows:
                            raise SystemExit(f"{name} read {count} rows, expected {rows}")
                    ours, arrow = fast["read_frame"][0], fast["arrow"][0]
                    adbc_s = f"{fast['adbc'][0]:.3f}" if adbc else "n/a"
                    print(
                        f"| {rows:,} | {label} | {ours:.3f} | {rows / ours:,.0f} | {arrow:.3f} | {rows / arrow:,.0f} "
                        f"| {arrow / ours:.2f} | {adbc_s} | {old[0]:.3f} | {rows / old[0]:,.0f} |",
                        flush=True,
                    )
        finally:
            conn.rollback()
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
            conn.commit()


if __name__ == "__main__":
    main()
