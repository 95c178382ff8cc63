"""Orchestration layer: the software-defined assets, split by domain."""

import warnings

from dagster import BetaWarning, PreviewWarning

# backfill_policy and automation conditions are marked beta/preview in Dagster 1.13; the project
# relies on them deliberately (README, "Backfills"), so the warning is noise in every run log.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)
