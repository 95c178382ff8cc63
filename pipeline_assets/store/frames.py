"""DataFrame <-> PostgreSQL: bulk upsert through COPY + staging, and reads into frames."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql


class StoreError(RuntimeError):
    pass


class DuplicateKeyError(StoreError):
    """The frame to upsert holds the same primary key more than once."""


@dataclass(frozen=True)
class UpsertStats:
    staged: int
    inserted: int
    updated: int
    # Inserted + updated rows per UTC day of ``changed_by_day`` (when upsert_frame was asked for it).
    changed_per_day: dict[str, int] = field(default_factory=dict)

    @property
    def unchanged(self) -> int:
        return self.staged - self.inserted - self.updated

    def as_metadata(self) -> dict[str, int]:
        return {
            "rows_staged": self.staged,
            "rows_inserted": self.inserted,
            "rows_updated": self.updated,
            "rows_unchanged": self.unchanged,
        }


def _column_types(conn: psycopg.Connection, table: str) -> dict[str, str]:
    rows = conn.execute(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod)
        FROM pg_attribute a
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
        """,
        (table,),
    ).fetchall()
    if not rows:
        raise StoreError(f"table {table} has no columns or does not exist")
    return dict(rows)


def _now_defaulted(conn: psycopg.Connection, table: str) -> list[str]:
    """Columns whose default is now() (computed_at, predicted_at, labelled_at...): the time a row
    was written, refreshed whenever an upsert changes the row."""
    rows = conn.execute(
        """
        SELECT a.attname FROM pg_attribute a
        JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
          AND pg_get_expr(d.adbin, d.adrelid) IN ('now()', 'CURRENT_TIMESTAMP', 'transaction_timestamp()')
        """,
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def _python_column(series: pd.Series) -> list:
    """Native Python values for COPY: NaN/NaT become NULL, numpy scalars become Python ones.
    Vectorised per dtype; this conversion, not COPY itself, dominates bulk writes."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        if series.dt.tz is None:
            raise StoreError(f"column {series.name!r} holds naive timestamps; the warehouse stores UTC only")
        values = np.array(series.dt.to_pydatetime(), dtype=object)
        values[series.isna().to_numpy()] = None
        return values.tolist()
    if pd.api.types.is_float_dtype(series.dtype):
        array = series.to_numpy(dtype=np.float64)
        values = array.astype(object, copy=True)
        values[np.isnan(array)] = None
        return values.tolist()
    if pd.api.types.is_bool_dtype(series.dtype) and not series.isna().any():
        return series.to_numpy(dtype=bool).tolist()
    if pd.api.types.is_integer_dtype(series.dtype):
        return (
            [None if pd.isna(v) else int(v) for v in series]
            if series.isna().any()
            else series.to_numpy(dtype=np.int64).tolist()
        )
    out = []
    for v in series.tolist():
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
            out.append(None)
        elif isinstance(v, pd.Timestamp):
            out.append(v.to_pydatetime())
        else:
            out.append(v)
    return out


def upsert_frame(
    conn: psycopg.Connection,
    table: str,
    frame: pd.DataFrame,
    key_columns: Sequence[str],
    changed_by_day: str | None = None,
) -> UpsertStats:
    """COPY ``frame`` into a staging table, then INSERT ... ON CONFLICT DO UPDATE.

    Rows whose non-key values are unchanged are left alone; a changed row gets now() in every
    column whose default is now() and that the frame does not set (``predicted_at``,
    ``labelled_at``, ``computed_at``), so those timestamps move exactly when the data does.
    Runs inside the caller's transaction.
    Writers of the same table and symbol are serialised by transaction-scoped advisory locks
    (taken in sorted order), so two range runs never interleave their rows of one symbol.
    ``changed_by_day`` names a timestamp column: the stats then count changed rows per UTC day
    (per-partition metadata inside range runs).
    """
    if frame.empty:
        return UpsertStats(0, 0, 0)
    types = _column_types(conn, table)
    columns = list(frame.columns)
    unknown = [c for c in columns if c not in types]
    if unknown:
        raise StoreError(f"{table} has no column(s) {unknown}")
    missing_keys = [k for k in key_columns if k not in columns]
    if missing_keys:
        raise StoreError(f"frame for {table} lacks key column(s) {missing_keys}")
    duplicated = frame.duplicated(subset=list(key_columns), keep=False)
    if duplicated.any():
        first = frame.loc[duplicated, list(key_columns)].iloc[0].to_dict()
        raise DuplicateKeyError(f"{table}: {int(duplicated.sum())} rows share a primary key, first {first}")

    _lock_writers(conn, table, frame)
    col_ids = sql.SQL(", ").join(map(sql.Identifier, columns))
    if _range_is_empty(conn, table, frame, key_columns):
        # First write of this (symbols, time range): nothing can conflict, so the rows go straight
        # into the table (a backfill's common case; the keyed INSERT ... ON CONFLICT is what bounds
        # rewrites). The writer locks above keep another writer from filling the range meanwhile.
        _copy_rows(conn, table, frame, columns, types)
        per_day = {}
        if changed_by_day is not None:
            per_day = frame[changed_by_day].dt.strftime("%Y-%m-%d").value_counts().to_dict()
        return UpsertStats(staged=len(frame), inserted=len(frame), updated=0, changed_per_day=per_day)
    staging = f"_stage_{table}"
    conn.execute(
        sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
            sql.Identifier(staging), sql.Identifier(table)
        )
    )
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(staging)))
    _copy_rows(conn, staging, frame, columns, types)

    value_columns = [c for c in columns if c not in key_columns]
    keys = sql.SQL(", ").join(map(sql.Identifier, key_columns))
    # a changed row gets a fresh write time (e.g. a revised prediction's predicted_at)
    touched = [c for c in _now_defaulted(conn, table) if c not in columns]
    if value_columns:
        assignments = sql.SQL(", ").join(
            [sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in value_columns]
            + [sql.SQL("{} = now()").format(sql.Identifier(c)) for c in touched]
        )
        target_values = sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier(table), sql.Identifier(c)) for c in value_columns
        )
        excluded_values = sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in value_columns)
        conflict = sql.SQL("DO UPDATE SET {} WHERE ROW({}) IS DISTINCT FROM ROW({})").format(
            assignments, target_values, excluded_values
        )
    else:
        conflict = sql.SQL("DO NOTHING")
    statement = sql.SQL(
        "INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging} ON CONFLICT ({keys}) {conflict} "
        "RETURNING (xmax = 0) AS inserted"
    ).format(
        table=sql.Identifier(table),
        cols=col_ids,
        staging=sql.Identifier(staging),
        keys=keys,
        conflict=conflict,
    )
    if changed_by_day is not None:
        statement = sql.Composed(
            [
                statement,
                sql.SQL(", to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD')").format(sql.Identifier(changed_by_day)),
            ]
        )
    returned = conn.execute(statement).fetchall()
    inserted = sum(1 for row in returned if row[0])
    per_day: dict[str, int] = {}
    if changed_by_day is not None:
        for row in returned:
            per_day[row[1]] = per_day.get(row[1], 0) + 1
    return UpsertStats(staged=len(frame), inserted=inserted, updated=len(returned) - inserted, changed_per_day=per_day)


_TIME_KEYS = ("ts", "published_at")


def _range_is_empty(conn: psycopg.Connection, table: str, frame: pd.DataFrame, key_columns: Sequence[str]) -> bool:
    """True when the table holds no row of the frame's symbols inside its time range (so no key
    of the frame can already exist). Only for keys of (symbol, time, ...)."""
    time_key = next((k for k in key_columns if k in _TIME_KEYS), None)
    if time_key is None or "symbol" not in key_columns:
        return False
    query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE symbol = ANY(%s) AND {} BETWEEN %s AND %s)").format(
        sql.Identifier(table), sql.Identifier(time_key)
    )
    symbols = sorted(frame["symbol"].astype(str).unique())
    low, high = frame[time_key].min().to_pydatetime(), frame[time_key].max().to_pydatetime()
    (exists,) = conn.execute(query, (symbols, low, high)).fetchone()
    return not exists


def _copy_rows(conn: psycopg.Connection, target: str, frame: pd.DataFrame, columns: list[str], types: dict) -> None:
    col_ids = sql.SQL(", ").join(map(sql.Identifier, columns))
    values = [_python_column(frame[c]) for c in columns]
    with conn.cursor() as cur:
        copy_stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(sql.Identifier(target), col_ids)
        with cur.copy(copy_stmt) as copy:
            copy.set_types([types[c] for c in columns])
            for row in zip(*values, strict=True):
                copy.write_row(row)


def _lock_writers(conn: psycopg.Connection, table: str, frame: pd.DataFrame) -> None:
    """One writer per (table, symbol) at a time: transaction-scoped advisory locks, sorted so
    concurrent writers cannot deadlock on them."""
    symbols = sorted(frame["symbol"].astype(str).unique()) if "symbol" in frame.columns else [""]
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s || ':' || s, 0)) FROM unnest(%s::text[]) AS s ORDER BY s",
        (table, symbols),
    )


_TIMESTAMPTZ_OID = 1184
_FLOAT_OIDS = {700, 701, 1700}
_INT_OIDS = {20, 21, 23}


def read_frame(
    conn: psycopg.Connection, query: str | sql.Composable, params: Sequence | dict | None = None
) -> pd.DataFrame:
    """Run a query and return a DataFrame with dtypes from the result's column types.

    timestamptz -> datetime64 UTC, float/numeric -> float64 (NULL -> NaN), integers -> int64
    (nullable Int64 when NULLs occur), text -> object. Results of only those types stream through
    ``COPY (query) TO STDOUT`` into pyarrow's CSV reader (no Python object per value); anything
    else (arrays, json, bytea, booleans, dates, non-SELECT statements) takes the row path.
    """
    try:
        fast = _read_frame_copy(conn, query, params)
    except _NotCopyable:
        fast = None
    return fast if fast is not None else _read_frame_rows(conn, query, params)


class _NotCopyable(Exception):
    pass


_TEXT_OIDS = {25, 1043, 1042}


def _read_frame_copy(conn, query, params) -> pd.DataFrame | None:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    text = query.as_string(conn) if isinstance(query, sql.Composable) else query
    if not text.lstrip().upper().startswith(("SELECT", "WITH")):
        raise _NotCopyable
    inlined = psycopg.ClientCursor(conn).mogrify(text, params) if params is not None else text
    body = inlined.strip().rstrip(";")
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM ({body}) AS q LIMIT 0")
        description = list(cur.description or [])
    if not description:
        raise _NotCopyable
    names = [c.name for c in description]
    if len(set(names)) != len(names):
        raise _NotCopyable
    types = {}
    for column in description:
        if column.type_code == _TIMESTAMPTZ_OID:
            types[column.name] = pa.timestamp("us", tz="UTC")
        elif column.type_code in _FLOAT_OIDS:
            types[column.name] = pa.float64()
        elif column.type_code in _INT_OIDS:
            types[column.name] = pa.int64()
        elif column.type_code in _TEXT_OIDS:
            types[column.name] = pa.string()
        else:
            raise _NotCopyable
    buffer = bytearray()
    with conn.cursor() as cur, cur.copy(f"COPY ({body}) TO STDOUT (FORMAT csv)") as copy:
        for chunk in copy:
            buffer += chunk
    if not buffer:
        return None  # an empty result: the row path gives the same empty typed frame as always
    table = pa_csv.read_csv(
        pa.py_buffer(bytes(buffer)),
        read_options=pa_csv.ReadOptions(column_names=names),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False
        ),
    )
    out = {}
    for column in description:
        values = table.column(column.name)
        if column.type_code in _INT_OIDS:
            out[column.name] = (
                pd.Series(values.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get), dtype="Int64")
                if values.null_count
                else pd.Series(values.to_numpy(), dtype="int64")
            )
        elif column.type_code in _TEXT_OIDS:
            out[column.name] = pd.Series(values.to_pylist(), dtype=object)
        elif column.type_code == _TIMESTAMPTZ_OID:
            out[column.name] = pd.Series(values.to_pandas())
        else:
            out[column.name] = pd.Series(values.to_numpy(zero_copy_only=False), dtype="float64")
    return pd.DataFrame(out)


def _read_frame_rows(
    conn: psycopg.Connection, query: str | sql.Composable, params: Sequence | dict | None = None
) -> pd.DataFrame:
    """The row path: fetch tuples and build typed columns."""
    with conn.cursor() as cur:
        cur.execute(query, params)
        description = cur.description or []
        rows = cur.fetchall()
    columns = {}
    for index, column in enumerate(description):
        values = [row[index] for row in rows]
        if column.type_code == _TIMESTAMPTZ_OID:
            columns[column.name] = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
        elif column.type_code in _FLOAT_OIDS:
            columns[column.name] = pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")
        elif column.type_code in _INT_OIDS:
            dtype = "Int64" if any(v is None for v in values) else "int64"
            columns[column.name] = pd.Series(values, dtype=dtype)
        else:
            columns[column.name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns)
