"""Reading hourly bars back into DataFrames: read_frame beside an Arrow-native read, in one run.

PIPELINE_BENCH_DATABASE_URL=postgresql://.../scratch python benchmarks/bench_read.py

Creates a scratch table (symbol text, ts timestamptz, five float8) with 300,000 and 1,000,000 rows,
then times (best of 3): ``read_frame`` (COPY to pyarrow's CSV reader, then pandas), the same COPY
into a pyarrow Table only (the Arrow-native reference), and the previous row-by-row path. Drops
the table afterwards.
"""

from __future__ import annotations

import os
import time

import pyarrow as pa
import pyarrow.csv as pa_csv

from pipeline_assets.store.db import connect
from pipeline_assets.store.frames import _read_frame_rows, read_frame

QUERY = "SELECT symbol, ts, open, high, low, close, volume FROM bench_read_bars ORDER BY symbol, ts"


def arrow_native(conn) -> pa.Table:
    buffer = bytearray()
    with conn.cursor() as cur, cur.copy(f"COPY ({QUERY}) TO STDOUT (FORMAT csv)") as copy:
        for chunk in copy:
            buffer += chunk
    names = ["symbol", "ts", "open", "high", "low", "close", "volume"]
    types = {"symbol": pa.string(), "ts": pa.timestamp("us", tz="UTC"), **{n: pa.float64() for n in names[2:]}}
    return pa_csv.read_csv(
        pa.py_buffer(bytes(buffer)),
        read_options=pa_csv.ReadOptions(column_names=names),
        convert_options=pa_csv.ConvertOptions(column_types=types),
    )


def best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    url = os.environ.get("PIPELINE_BENCH_DATABASE_URL")
    if not url:
        raise SystemExit("set PIPELINE_BENCH_DATABASE_URL to a scratch database")
    print("| rows | read_frame s | Arrow-native COPY s | read_frame / Arrow speed | previous row path s |")
    print("|---:|---:|---:|---:|---:|")
    with connect(url) as conn:
        try:
            for rows in (300_000, 1_000_000):
                conn.execute("DROP TABLE IF EXISTS bench_read_bars")
                conn.execute(
                    "CREATE TABLE bench_read_bars AS SELECT 'SYM' || (g %% 10) AS symbol, "
                    "timestamptz '2015-01-01' + (g / 10) * interval '1 hour' AS ts, random() AS open, "
                    "random() AS high, random() AS low, random() AS close, random() * 1000 AS volume "
                    "FROM generate_series(1, %s) g",
                    (rows,),
                )
                conn.commit()
                ours = best(lambda: read_frame(conn, QUERY))
                arrow = best(lambda: arrow_native(conn))
                old = best(lambda: _read_frame_rows(conn, QUERY), repeats=1)
                print(f"| {rows:,} | {ours:.3f} | {arrow:.3f} | {arrow / ours:.2f} | {old:.3f} |")
        finally:
            conn.rollback()
            conn.execute("DROP TABLE IF EXISTS bench_read_bars")
            conn.commit()


if __name__ == "__main__":
    main()
