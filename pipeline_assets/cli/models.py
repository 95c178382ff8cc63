"""Model registry administration: list versions, verify artifacts, retire a corrupt champion.

    python -m pipeline_assets.cli.models list [--model-name direction_xgboost]
    python -m pipeline_assets.cli.models verify
    python -m pipeline_assets.cli.models retire --model-id 12 --reason "artifact replaced out of band"
    python -m pipeline_assets.cli.models retire --model-name direction_xgboost --reason "..."   (its champion)

Retiring a champion re-promotes the newest earlier version whose artifact verifies against the
append-only ledger; when none does, it says so, and the next retrain's candidate becomes champion.
Uses PIPELINE_DATABASE_URL. Exit codes: 0 done, 1 a verify found corrupt artifacts, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys

from pipeline_assets.store import models as registry
from pipeline_assets.store.db import connect, database_url_from_env


def _list(conn, model_name: str | None) -> int:
    query = (
        "SELECT model_id, model_name, version, status, format, labels_matured_until, retired_reason "
        "FROM ml_models_metadata" + (" WHERE model_name = %s" if model_name else "") + " ORDER BY model_name, version"
    )
    rows = conn.execute(query, (model_name,) if model_name else None).fetchall()
    for model_id, name, version, status, fmt, matured, reason in rows:
        problem = registry.verify_artifact(conn, model_id)
        integrity = "ok" if problem is None else "CORRUPT"
        retired = f" retired: {reason}" if reason else ""
        print(f"{model_id:>6} {name:<22} v{version:<4} {status:<10} {fmt:<14} {integrity:<8} {matured}{retired}")
    return 0


def _verify(conn) -> int:
    corrupt = 0
    for (model_id,) in conn.execute("SELECT model_id FROM ml_models_metadata ORDER BY model_id").fetchall():
        problem = registry.verify_artifact(conn, model_id)
        if problem:
            corrupt += 1
            print(problem)
    print(f"{corrupt} corrupt artifact(s)")
    return 1 if corrupt else 0


def _retire(conn, model_id: int | None, model_name: str | None, reason: str) -> int:
    if model_id is None:
        current = registry.champion(conn, model_name)
        if current is None:
            print(f"no champion for {model_name}", file=sys.stderr)
            return 2
        model_id = current.model_id
    record = registry.get_model(conn, model_id)
    restored = registry.retire_model(conn, model_id, reason)
    print(f"retired {record.model_name} v{record.version} (model_id={model_id}): {reason}")
    if record.status == "champion":
        if restored is None:
            print(f"no earlier {record.model_name} version verifies; none is in service until the next retrain")
        else:
            print(f"champion is now {restored.model_name} v{restored.version} (model_id={restored.model_id})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list")
    listing.add_argument("--model-name")
    commands.add_parser("verify")
    retire = commands.add_parser("retire")
    target = retire.add_mutually_exclusive_group(required=True)
    target.add_argument("--model-id", type=int)
    target.add_argument("--model-name")
    retire.add_argument("--reason", required=True)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    with connect(database_url_from_env()) as conn:
        try:
            if args.command == "list":
                return _list(conn, args.model_name)
            if args.command == "verify":
                return _verify(conn)
            return _retire(conn, args.model_id, args.model_name, args.reason)
        except registry.ModelNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    raise SystemExit(main())
