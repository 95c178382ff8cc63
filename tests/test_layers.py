"""Imports point downwards only (DESIGN.md): compute and sources never see Dagster or the store."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline_assets"
FORBIDDEN = {
    "contracts": ("dagster", "psycopg", "pipeline_assets.store", "pipeline_assets.sources", "pipeline_assets.assets"),
    "features": ("dagster", "psycopg", "pipeline_assets.store", "pipeline_assets.sources", "pipeline_assets.assets"),
    "ml": ("dagster", "psycopg", "pipeline_assets.store", "pipeline_assets.sources", "pipeline_assets.assets"),
    "sources": ("dagster", "psycopg", "pipeline_assets.store", "pipeline_assets.assets"),
    "store": ("dagster", "pipeline_assets.assets", "pipeline_assets.automation", "pipeline_assets.sources"),
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_layers_import_downwards_only():
    offenders = []
    for layer, forbidden in FORBIDDEN.items():
        for path in sorted((PACKAGE / layer).glob("*.py")):
            for name in _imports(path):
                if name.startswith(forbidden):
                    offenders.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert offenders == []
    assert _imports(PACKAGE / "assets" / "ingestion.py") >= {"dagster", "pipeline_assets.store.frames"}  # sanity
