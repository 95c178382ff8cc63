"""DataFrame <-> PostgreSQL: bulk upsert through COPY + staging, and reads into frames."""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import sliding_window_view
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
_TEXT_OIDS = {25, 1043, 1042, 19}  # text, varchar, bpchar, name


def read_frame(
    conn: psycopg.Connection, query: str | sql.Composable, params: Sequence | dict | None = None
) -> pd.DataFrame:
    """Run a query and return a DataFrame with dtypes from the result's column types.

    timestamptz -> datetime64[us, UTC] (NULL -> NaT), float/numeric -> float64 (NULL -> NaN),
    integers -> int64 (nullable Int64 when NULLs occur), anything else -> object (Python values).

    A SELECT / WITH query whose columns are all of those types (text, varchar, char and name
    included) is read through ``COPY (query) TO STDOUT (FORMAT BINARY)`` and decoded column-wise
    with numpy, with no Python object per value except the strings themselves. Other results
    (booleans, dates, arrays, json, bytea..., statements that are not plain reads) and timestamps a
    Python datetime cannot hold (+-infinity, years outside 1-9999: psycopg raises for them) take the
    row path, which fetches tuples. Both paths return equal frames (tests/test_read_frame.py).
    """
    fast = _read_frame_copy(conn, query, params)
    return fast if fast is not None else _read_frame_rows(conn, query, params)


# Statements the COPY path leaves to the row path: several statements, writes (a data-modifying
# WITH cannot be wrapped in a subquery), SELECT ... INTO, row locks (FOR [NO KEY] UPDATE, FOR
# [KEY] SHARE). A false alarm (the word in a string literal) only costs the faster path.
_NOT_A_PLAIN_READ = re.compile(r";|\b(?:INSERT|UPDATE|DELETE|MERGE|INTO)\b|\bFOR\s+(?:KEY\s+)?SHARE\b", re.IGNORECASE)
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 (PostgreSQL's binary timestamp origin) in Unix µs
# Python datetimes (psycopg's row path) hold 0001-01-01 .. 9999-12-31 23:59:59.999999 only.
_TS_MIN_US = int((np.datetime64("0001-01-01T00:00:00", "us") - np.datetime64("2000-01-01", "us")).astype(np.int64))
_TS_MAX_US = int((np.datetime64("10000-01-01T00:00:00", "us") - np.datetime64("2000-01-01", "us")).astype(np.int64)) - 1
_BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


@dataclass(frozen=True)
class _CopyColumn:
    name: str
    # fixed width, read from each row's fixed part: "int", "float", "float4", "ts"; variable: "text", "numeric"
    kind: str


def _copy_columns(conn: psycopg.Connection, body: str) -> list[_CopyColumn] | None:
    """The result's columns with the way the COPY path decodes each, or None when it cannot."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM (\n{body}\n) AS q LIMIT 0")
        description = list(cur.description or [])
    if not description or len({c.name for c in description}) != len(description):
        return None
    columns = []
    for column in description:
        oid = column.type_code
        if oid in _INT_OIDS:
            kind = "int"
        elif oid == 701:
            kind = "float"
        elif oid == 700:
            kind = "float4"
        elif oid == 1700:
            kind = "numeric"
        elif oid == _TIMESTAMPTZ_OID:
            kind = "ts"
        elif oid in _TEXT_OIDS:
            kind = "text"
        else:
            return None
        columns.append(_CopyColumn(column.name, kind))
    return columns


def _read_frame_copy(
    conn: psycopg.Connection, query: str | sql.Composable, params: Sequence | dict | None
) -> pd.DataFrame | None:
    """The COPY BINARY path; None when the query or its result is one for the row path.

    The COPY selects, from the query as a subquery, every fixed-width column first, NULLs replaced
    (a flag column carries them for integers and timestamps; float NULLs become NaN, as promised),
    then the variable-width ones (text as it is, numeric as text). Every row then starts with the
    same fixed layout, read at once as a numpy structured array; the variable part of each row is
    walked column by column with vectorised offsets. PostgreSQL sends one COPY message per row
    (protocol), so row boundaries come from the message lengths; the walk checks that every row
    ends exactly where the next one begins. The projection over the subquery keeps its ORDER BY
    (PostgreSQL scans an ordered subquery in order; the tests read ordered results both ways).
    Parameters are bound client-side (psycopg's mogrify) because COPY takes none.
    """
    text = query.as_string(conn) if isinstance(query, sql.Composable) else query
    if conn.info.encoding != "utf-8" or not text.lstrip().upper().startswith(("SELECT", "WITH")):
        return None
    body = psycopg.ClientCursor(conn).mogrify(text, params) if params is not None else text
    body = body.strip().rstrip(";")
    if _NOT_A_PLAIN_READ.search(body):
        return None
    columns = _copy_columns(conn, body)
    if columns is None:
        return None

    fixed = [c for c in columns if c.kind in ("int", "float", "float4", "ts")]
    varlen = [c for c in columns if c.kind in ("text", "numeric")]
    selected, formats = [], []
    for c in fixed:
        ident = sql.Identifier(c.name).as_string(conn)
        if c.kind in ("float", "float4"):
            # float4 through its text form, as psycopg's row path reads it (0.1, not 0.100000001)
            value = f"q.{ident}::text::float8" if c.kind == "float4" else f"q.{ident}"
            selected.append(f"COALESCE({value}, 'NaN'::float8)")
            formats.append(">f8")
        elif c.kind == "int":
            selected += [f"COALESCE(q.{ident}::int8, 0)", f"q.{ident} IS NULL"]
            formats += [">i8", "?"]
        else:
            selected += [f"COALESCE(q.{ident}, '2000-01-01Z')", f"q.{ident} IS NULL"]
            formats += [">i8", "?"]
    for c in varlen:
        ident = sql.Identifier(c.name).as_string(conn)
        selected.append(f"q.{ident}::text" if c.kind == "numeric" else f"q.{ident}")
    data, lengths = _copy_out(
        conn, f"COPY (SELECT {', '.join(selected)} FROM (\n{body}\n) AS q) TO STDOUT (FORMAT BINARY)"
    )
    return _decode_binary(data, lengths, columns, fixed, varlen, formats)


def _copy_out(conn: psycopg.Connection, statement: str) -> tuple[bytearray, np.ndarray]:
    buffer = bytearray()
    lengths = array("q")
    append = lengths.append
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for message in copy:
            buffer += message
            append(len(message))
    return buffer, np.frombuffer(lengths, dtype=np.int64) if lengths else np.zeros(0, np.int64)


def _decode_binary(
    data: bytearray,
    lengths: np.ndarray,
    columns: list[_CopyColumn],
    fixed: list[_CopyColumn],
    varlen: list[_CopyColumn],
    formats: list[str],
) -> pd.DataFrame | None:
    if len(data) < 21 or not data.startswith(_BINARY_SIGNATURE) or data[-2:] != b"\xff\xff":
        raise StoreError("COPY BINARY: the server's stream lacks the binary header or trailer")
    header = 19 + int.from_bytes(data[15:19], "big")
    row_lengths = lengths.copy()
    row_lengths[0] -= header  # the header travels with the first row
    row_lengths[-1] -= 2  # the trailer (field count -1) with the last message
    row_lengths = row_lengths[row_lengths > 0]
    n = len(row_lengths)
    if n == 0:
        return _empty_frame(columns)
    starts = header + np.concatenate(([0], np.cumsum(row_lengths[:-1])))
    buf = np.frombuffer(data, dtype=np.uint8)

    fields = [("count", ">i2")]
    for i, fmt in enumerate(formats):
        fields += [(f"len{i}", ">i4"), (f"val{i}", fmt)]
    layout = np.dtype(fields)
    if (row_lengths == row_lengths[0]).all():  # every row as long: a zero-copy structured view
        padded = np.dtype(
            {
                "names": layout.names,
                "formats": [layout[k] for k in layout.names],
                "offsets": [layout.fields[k][1] for k in layout.names],
                "itemsize": int(row_lengths[0]),
            }
        )
        if padded.itemsize < layout.itemsize:
            return None
        head = np.frombuffer(data, dtype=padded, count=n, offset=header)
    else:
        if (row_lengths < layout.itemsize).any():
            return None
        head = np.ascontiguousarray(sliding_window_view(buf, layout.itemsize)[starts]).view(layout)[:, 0]
    widths = [np.dtype(f).itemsize for f in formats]
    if (head["count"] != len(formats) + len(varlen)).any() or any(
        (head[f"len{i}"] != w).any() for i, w in enumerate(widths)
    ):
        return None  # not the layout asked for: let the row path answer

    out: dict[str, pd.Series] = {}
    i = 0
    for c in fixed:
        if c.kind in ("float", "float4"):
            values = head[f"val{i}"].astype(np.float64)
            out[c.name] = pd.Series(values, dtype="float64")
            i += 1
            continue
        values = head[f"val{i}"].astype(np.int64)
        nulls = head[f"val{i + 1}"].astype(bool)
        i += 2
        if c.kind == "int":
            out[c.name] = (
                pd.Series(pd.arrays.IntegerArray(values, nulls)) if nulls.any() else pd.Series(values, dtype="int64")
            )
            continue
        present = values[~nulls]
        if present.size and (present.min() < _TS_MIN_US or present.max() > _TS_MAX_US):
            return None  # +-infinity or beyond a Python datetime: the row path raises psycopg's error
        stamps = (values + _PG_EPOCH_US).view("M8[us]")
        stamps[nulls] = np.datetime64("NaT")
        out[c.name] = pd.Series(stamps).dt.tz_localize("UTC")

    position = starts + layout.itemsize
    for c in varlen:
        if (position > len(buf) - 4).any():
            return None
        size = np.ascontiguousarray(sliding_window_view(buf, 4)[position]).view(">i4")[:, 0].astype(np.int64)
        nulls = size < 0
        size[nulls] = 0
        offsets = np.concatenate(([0], np.cumsum(size)))
        if (position + 4 + size > len(buf)).any():
            return None
        strings = pa.LargeStringArray.from_buffers(
            n,
            pa.py_buffer(offsets),
            pa.py_buffer(_gather(buf, position + 4, size, offsets)),
            pa.py_buffer(np.packbits(~nulls, bitorder="little")),
            null_count=int(nulls.sum()),
        )
        if c.kind == "numeric":
            out[c.name] = pd.Series(pc.cast(strings, pa.float64()).to_numpy(zero_copy_only=False), dtype="float64")
        else:
            out[c.name] = pd.Series(_python_strings(strings), dtype=object)
        position = position + 4 + size
    if (position != starts + row_lengths).any():
        return None  # rows do not end where they should: not the stream we expected
    return pd.DataFrame({c.name: out[c.name] for c in columns})


def _python_strings(strings: pa.Array) -> np.ndarray:
    """An object array of str (None for NULL). A column of few distinct values (symbols, sources)
    makes one Python string per distinct value, shared by its rows."""
    encoded = pc.dictionary_encode(strings)
    if len(encoded.dictionary) * 4 > len(strings):
        return strings.to_numpy(zero_copy_only=False)
    values = np.append(encoded.dictionary.to_numpy(zero_copy_only=False), None)
    return values[encoded.indices.fill_null(len(values) - 1).to_numpy()]


def _gather(buf: np.ndarray, starts: np.ndarray, sizes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Concatenate buf[starts[i]:starts[i] + sizes[i]] for every i, in blocks of ~4 MB so the index
    arrays stay small."""
    out = np.empty(int(offsets[-1]), dtype=np.uint8)
    n, i = len(sizes), 0
    while i < n:
        j = int(np.searchsorted(offsets, offsets[i] + (1 << 22), side="right")) - 1
        j = min(max(j, i + 1), n)
        low, high = int(offsets[i]), int(offsets[j])
        if high > low:
            index = np.repeat(starts[i:j] - offsets[i:j], sizes[i:j]) + np.arange(low, high)
            out[low:high] = buf[index]
        i = j
    return out


def _empty_frame(columns: list[_CopyColumn]) -> pd.DataFrame:
    dtypes = {
        "int": "int64",
        "float": "float64",
        "float4": "float64",
        "numeric": "float64",
        "ts": "datetime64[us, UTC]",
        "text": object,
    }
    return pd.DataFrame({c.name: pd.Series([], dtype=dtypes[c.kind]) for c in columns})


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
            stamps = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
            columns[column.name] = stamps.astype("datetime64[us, UTC]")  # an empty result too
        elif column.type_code in _FLOAT_OIDS:
            columns[column.name] = pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")
        elif column.type_code in _INT_OIDS:
            dtype = "Int64" if any(v is None for v in values) else "int64"
            columns[column.name] = pd.Series(values, dtype=dtype)
        else:
            columns[column.name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns)
