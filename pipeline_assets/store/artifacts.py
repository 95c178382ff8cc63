"""Training datasets as artifacts: Parquet + meta.json under a configurable location.

The location is a local directory or any fsspec URL (object storage in a multi-machine
deployment: ``s3://bucket/prefix`` with s3fs installed, ``gs://``, ``az://``...), from
PIPELINE_ARTIFACT_DIR (default ``.artifacts`` beside the working directory). Each dataset gets
its own directory named by the SHA-256 of its Parquet bytes, so rewriting the same data yields
the same URI; the row in ``training_datasets`` records the hash, and reading verifies it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path

import fsspec
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg.types.json import Jsonb

ARTIFACT_DIR_ENV = "PIPELINE_ARTIFACT_DIR"
LOCKED_PACKAGES = ("numpy", "pandas", "numba", "xgboost-cpu", "scikit-learn", "river", "pyarrow", "dagster")


class ArtifactError(RuntimeError):
    pass


@dataclass(frozen=True)
class DatasetRecord:
    dataset_id: int
    uri: str
    sha256: str
    row_count: int
    meta: dict


def artifact_root() -> str:
    return os.environ.get(ARTIFACT_DIR_ENV) or str(Path.cwd() / ".artifacts")


def git_commit() -> str:
    """The commit of the code that wrote the dataset (PIPELINE_GIT_COMMIT in images without .git)."""
    if os.environ.get("PIPELINE_GIT_COMMIT"):
        return os.environ["PIPELINE_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def locked_versions() -> dict[str, str]:
    versions = {}
    for package in LOCKED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    """Deterministic Parquet: same frame, same bytes (no creation timestamp, fixed row groups)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", row_group_size=1_000_000, store_schema=False)
    return buffer.getvalue()


def write_training_dataset(
    conn: psycopg.Connection,
    frame: pd.DataFrame,
    *,
    feature_set_id: str,
    label_set_id: str,
    window_start: datetime,
    window_end: datetime,
    matured_by: datetime,
    label_column: str = "direction",
    root: str | None = None,
) -> DatasetRecord:
    """Write ``frame`` as Parquet + meta.json and register it (in the caller's transaction)."""
    data = _parquet_bytes(frame.reset_index(drop=True))
    sha256 = hashlib.sha256(data).hexdigest()
    root = (root or artifact_root()).rstrip("/")
    directory = f"{root}/training_datasets/{sha256[:16]}"
    uri = f"{directory}/dataset.parquet"
    counts = frame[label_column].value_counts().sort_index() if len(frame) else pd.Series(dtype=int)
    meta = {
        "feature_set_id": feature_set_id,
        "label_set_id": label_set_id,
        "window_start": window_start.isoformat(),
        "window_end": window_end.isoformat(),
        "matured_by": matured_by.isoformat(),
        "rows": len(frame),
        "columns": list(frame.columns),
        "class_balance": {str(k): round(int(v) / max(len(frame), 1), 6) for k, v in counts.items()},
        "class_counts": {str(k): int(v) for k, v in counts.items()},
        "git_commit": git_commit(),
        "dependencies": locked_versions(),
        "parquet_sha256": sha256,
    }
    fs, path = fsspec.core.url_to_fs(directory)
    fs.makedirs(path, exist_ok=True)
    with fs.open(f"{path}/dataset.parquet", "wb") as handle:
        handle.write(data)
    with fs.open(f"{path}/meta.json", "w") as handle:
        json.dump(meta, handle, indent=2, sort_keys=True)
    row = conn.execute(
        """
        INSERT INTO training_datasets (uri, sha256, feature_set_id, label_set_id, window_start, window_end,
                                       matured_by, row_count, meta)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (uri) DO UPDATE SET meta = EXCLUDED.meta
        RETURNING dataset_id
        """,
        (uri, sha256, feature_set_id, label_set_id, window_start, window_end, matured_by, len(frame), Jsonb(meta)),
    ).fetchone()
    return DatasetRecord(dataset_id=row[0], uri=uri, sha256=sha256, row_count=len(frame), meta=meta)


def latest_training_dataset(conn: psycopg.Connection) -> DatasetRecord | None:
    row = conn.execute(
        "SELECT dataset_id, uri, sha256, row_count, meta FROM training_datasets ORDER BY dataset_id DESC LIMIT 1"
    ).fetchone()
    return DatasetRecord(*row) if row else None


def get_training_dataset(conn: psycopg.Connection, dataset_id: int) -> DatasetRecord:
    row = conn.execute(
        "SELECT dataset_id, uri, sha256, row_count, meta FROM training_datasets WHERE dataset_id = %s",
        (dataset_id,),
    ).fetchone()
    if row is None:
        raise ArtifactError(f"no training dataset with id {dataset_id}")
    return DatasetRecord(*row)


def read_training_dataset(record: DatasetRecord) -> pd.DataFrame:
    """The dataset's rows, after checking the file's SHA-256 against the registry."""
    fs, path = fsspec.core.url_to_fs(record.uri)
    try:
        with fs.open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError as exc:
        raise ArtifactError(f"training dataset {record.dataset_id}: {record.uri} is missing") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != record.sha256:
        raise ArtifactError(
            f"training dataset {record.dataset_id}: {record.uri} has sha256 {actual[:12]}, registry says "
            f"{record.sha256[:12]}; refusing to train on altered data"
        )
    return pq.read_table(io.BytesIO(data)).to_pandas()
