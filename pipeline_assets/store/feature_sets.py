"""The ``feature_sets`` registry: one row per family version and per model feature set."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from pipeline_assets.features.families import FAMILIES, MODEL_FAMILIES, FeatureFamily, feature_set_payload
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


class FeatureSetNotMaterialised(LookupError):
    """A model's feature set has no stored rows for the requested range (or is not registered):
    serving it would predict from nothing, or from features of another version."""

    def __init__(self, feature_set_id: str, tables: Sequence[str], start, end, detail: str = "") -> None:
        self.feature_set_id = feature_set_id
        self.tables = tuple(tables)
        self.start, self.end = start, end
        self.detail = detail
        super().__init__(
            f"feature set {feature_set_id} is not materialised in {', '.join(self.tables)} for "
            f"[{_iso(start)}, {_iso(end)}){': ' + detail if detail else ''}"
        )


def _iso(value) -> str:
    if value is None:
        return "any time"
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.+-]+$")


@dataclass(frozen=True)
class FamilyVersion:
    name: str
    table: str
    feature_set_id: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ModelFeatureSet:
    """A model feature set resolved to the family versions (tables, ids, columns) it joins."""

    feature_set_id: str
    families: tuple[FamilyVersion, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for f in self.families for c in f.columns)

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(f.table for f in self.families)


def current_model_feature_set() -> ModelFeatureSet:
    from pipeline_assets.ml.dataset import MODEL_FEATURE_SET_ID

    return ModelFeatureSet(
        MODEL_FEATURE_SET_ID,
        tuple(
            FamilyVersion(n, FAMILIES[n].table, FAMILIES[n].feature_set_id, FAMILIES[n].columns) for n in MODEL_FAMILIES
        ),
    )


def resolve_model_feature_set(conn: psycopg.Connection, feature_set_id: str | None = None) -> ModelFeatureSet:
    """The family versions of a model feature set: the current code's for its own id (or None),
    otherwise the ``feature_sets`` registry's record of it (families in the model's order, each
    family version's columns as registered). An id the registry does not know raises
    FeatureSetNotMaterialised."""
    current = current_model_feature_set()
    if feature_set_id is None or feature_set_id == current.feature_set_id:
        return current
    if not _ID_PATTERN.match(feature_set_id):
        raise ValueError(f"feature_set_id {feature_set_id!r} is not an id (letters, digits, '.', '_', '+', '-')")
    record = registered(conn, feature_set_id)
    if record is None or record["kind"] != "model":
        raise FeatureSetNotMaterialised(
            feature_set_id,
            current.tables,
            None,
            None,
            "it is not registered in feature_sets as a model feature set",
        )
    families = []
    for name in record["name"].split("+"):
        family_id = record["families"][name]["feature_set_id"]
        if not _ID_PATTERN.match(family_id):
            raise ValueError(f"feature_sets row {feature_set_id}: family {name} id {family_id!r} is not an id")
        declared = FAMILIES.get(name)
        if declared is None:
            raise FeatureSetNotMaterialised(
                feature_set_id, (), None, None, f"family {name!r} is no longer declared in this code"
            )
        family_record = registered(conn, family_id)
        if family_record is not None:
            columns = tuple(family_record["columns"])
        elif family_id == declared.feature_set_id:
            columns = declared.columns
        else:
            raise FeatureSetNotMaterialised(
                feature_set_id,
                (declared.table,),
                None,
                None,
                f"family version {family_id} of {name} is not registered in feature_sets",
            )
        families.append(FamilyVersion(name, declared.table, family_id, columns))
    return ModelFeatureSet(feature_set_id, tuple(families))
