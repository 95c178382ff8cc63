"""The ``feature_sets`` registry: one row per family version and per model feature set."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg.types.json import Jsonb

from pipeline_assets.features.families import FAMILIES, FeatureFamily, feature_set_payload
from pipeline_assets.store.artifacts import git_commit


def register_family(conn: psycopg.Connection, family: FeatureFamily) -> str:
    conn.execute(
        "INSERT INTO feature_sets (feature_set_id, kind, name, families, columns, params, git_commit) "
        "VALUES (%s, 'family', %s, %s, %s, %s, %s) ON CONFLICT (feature_set_id) DO NOTHING",
        (
            family.feature_set_id,
            family.name,
            Jsonb({family.name: {"version": family.version, "feature_set_id": family.feature_set_id}}),
            list(family.columns),
            Jsonb(family.params),
            git_commit(),
        ),
    )
    return family.feature_set_id


def register_model_feature_set(conn: psycopg.Connection, feature_set_id: str, names: Sequence[str]) -> str:
    payload = feature_set_payload(names)
    for name in names:
        register_family(conn, FAMILIES[name])
    conn.execute(
        "INSERT INTO feature_sets (feature_set_id, kind, name, families, columns, params, git_commit) "
        "VALUES (%s, 'model', %s, %s, %s, %s, %s) ON CONFLICT (feature_set_id) DO NOTHING",
        (
            feature_set_id,
            "+".join(names),
            Jsonb(payload["families"]),
            payload["columns"],
            Jsonb(payload["params"]),
            git_commit(),
        ),
    )
    return feature_set_id


def registered(conn: psycopg.Connection, feature_set_id: str) -> dict | None:
    row = conn.execute(
        "SELECT kind, name, families, columns, params, git_commit FROM feature_sets WHERE feature_set_id = %s",
        (feature_set_id,),
    ).fetchone()
    if row is None:
        return None
    return dict(zip(("kind", "name", "families", "columns", "params", "git_commit"), row, strict=True))
