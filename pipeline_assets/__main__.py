"""Command line: `python -m pipeline_assets {backfill,liquidations,demo,checks} ...` (each has --help)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {
        "backfill": "pipeline_assets.cli.backfill",
        "liquidations": "pipeline_assets.cli.liquidations",
        "demo": "pipeline_assets.demo",
        "checks": "pipeline_assets.checks.run",
    }
    if not argv or argv[0] not in commands:
        print(f"usage: python -m pipeline_assets {{{','.join(commands)}}} [options]   (--help after a command)")
        return 2
    import importlib

    module = importlib.import_module(commands[argv[0]])
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    raise SystemExit(main())
