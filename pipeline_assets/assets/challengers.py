"""Champion/challenger on realised rows.

A retrained model that does not beat its champion on held-out rows stays registered as a
*challenger*: ml_predictions (XGBoost) and ml_ensemble_predictions (the linear member) make it
predict the same rows as the champion into ``ml_shadow_predictions``. ``challenger_review`` then
compares, per challenger, its shadow rows whose labels have matured with the champion's own rows
for the same (symbol, hour) by a moving-block bootstrap of per-row log-loss differences
(ml/promotion.py, confidence PIPELINE_PROMOTION_LEVEL), promotes a significant winner, retires a
significantly worse or too old challenger, and records every decision (basis 'realised_shadow').

It runs daily at 01:45 UTC (``challenger_review_schedule``), after the previous day's hours have
been predicted and the labels of its early hours have matured; it can also be materialised by hand.
"""

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, Config, Failure, MaterializeResult, MetadataValue, asset
from pydantic import Field

from pipeline_assets.assets._common import ML_OWNERS, TRANSIENT_RETRY, WAREHOUSE_POOL, transient_only, utc_now
from pipeline_assets.assets.ensemble import ml_ensemble_predictions
from pipeline_assets.assets.features import ml_labels
from pipeline_assets.assets.inference import ml_predictions
from pipeline_assets.assets.models import _parse_utc
from pipeline_assets.ml import promotion
from pipeline_assets.ml.labels import HORIZON_HOURS
from pipeline_assets.resources import WarehouseResource
from pipeline_assets.store import models as registry
from pipeline_assets.store.warehouse import read_shadow_comparison

PROBABILITIES = ("prob_sell", "prob_hold", "prob_buy")


class ChallengerReviewConfig(Config):
    as_of: str | None = Field(
        default=None, description="ISO-8601 UTC: only labels matured by then count (default: now)."
    )
    min_rows: int = Field(
        default=200, ge=promotion.MIN_ROWS, description="Matured shadow rows a challenger needs before any verdict."
    )
    min_blocks: int = Field(
        default=10,
        ge=2,
        description="Bootstrap blocks (several label horizons of every symbol each) needed before any verdict.",
    )
    max_age_days: float = Field(
        default=30.0, ge=0, description="A challenger older than this without a significant win is retired."
    )


@asset(
    group_name="models",
    kinds={"postgres"},
    code_version="1",
    owners=ML_OWNERS,
    tags={"trigger": "review", "layer": "models"},
    pool=WAREHOUSE_POOL,
    retry_policy=TRANSIENT_RETRY,
    deps=[ml_labels, ml_predictions, ml_ensemble_predictions],
)
@transient_only
def challenger_review(context: AssetExecutionContext, config: ChallengerReviewConfig, warehouse: WarehouseResource):
    """For every active challenger: its matured shadow rows against the champion's rows for the
    same hours; promote when significantly better, retire when significantly worse or older than
    max_age_days, else keep. Every decision and its figures go to model_promotion_decisions."""
    as_of = _parse_utc(config.as_of) if config.as_of else utc_now()
    level = promotion.promotion_level()
    decisions = []
    with warehouse.transaction() as conn:
        for model_name in registry.challenger_names(conn):
            champion = registry.champion(conn, model_name)
            if champion is None:
                raise Failure(
                    f"challenger_review: {model_name} has challengers but no champion; promote one with "
                    f"`python -m pipeline_assets.cli.models`",
                    allow_retries=False,
                )
            # every challenger of a kind is judged against the same champion and rows; of several
            # significant winners only the best (lowest log-loss difference) is promoted
            reviews = [
                (challenger, _review(challenger, champion, conn, config, as_of, level))
                for challenger in registry.challengers(conn, model_name)
            ]
            winners = [(c, r) for c, r in reviews if r.action == "promoted"]
            best = min(winners, key=lambda cr: cr[1].decision.difference)[0].model_id if winners else None
            for challenger, review in reviews:
                action, reason = review.action, review.reason
                if action == "promoted" and challenger.model_id != best:
                    action, reason = "kept", f"significantly better, but challenger {best} was better still: {reason}"
                if action == "promoted":
                    registry.promote_model(conn, challenger.model_id)
                elif action == "retired":
                    registry.retire_model(conn, challenger.model_id, f"challenger_review: {reason}")
                registry.record_decision(
                    conn,
                    model_name=model_name,
                    candidate_id=challenger.model_id,
                    champion_id=champion.model_id,
                    decision=replace(review.decision, reason=reason),
                    basis="realised_shadow",
                    action=action,
                )
                context.log.info(f"{model_name} challenger {challenger.model_id}: {action}: {reason}")
                d = review.decision
                decisions.append(
                    {
                        "model_name": model_name,
                        "challenger_id": challenger.model_id,
                        "champion_id": champion.model_id,
                        "action": action,
                        "matured_rows": d.rows,
                        "challenger_log_loss": d.candidate_log_loss,
                        "champion_log_loss": d.champion_log_loss,
                        "difference": d.difference,
                        "ci_low": d.ci_low,
                        "ci_high": d.ci_high,
                        "reason": reason,
                    }
                )
    table = pd.DataFrame(decisions)
    counts = table["action"].value_counts().to_dict() if len(table) else {}
    return MaterializeResult(
        metadata={
            "as_of": MetadataValue.text(as_of.isoformat()),
            "level": MetadataValue.float(level),
            "min_rows": MetadataValue.int(config.min_rows),
            "min_blocks": MetadataValue.int(config.min_blocks),
            "max_age_days": MetadataValue.float(config.max_age_days),
            "challengers_reviewed": MetadataValue.int(len(table)),
            "promoted": MetadataValue.int(int(counts.get("promoted", 0))),
            "retired": MetadataValue.int(int(counts.get("retired", 0))),
            "kept": MetadataValue.int(int(counts.get("kept", 0))),
            "decisions": MetadataValue.md(
                table.to_markdown(index=False, floatfmt=".4f") if len(table) else "no active challenger"
            ),
        }
    )


def _review(challenger, champion, conn, config: ChallengerReviewConfig, as_of, level: float):
    rows = read_shadow_comparison(conn, challenger.model_id, champion.model_id, as_of)
    horizons = set(rows["horizon_hours"].unique()) if len(rows) else {HORIZON_HOURS}
    if len(horizons) != 1:
        raise Failure(
            f"challenger_review: {challenger.model_name} challenger {challenger.model_id} compares labels of "
            f"several horizons {sorted(horizons)}",
            allow_retries=False,
        )
    return promotion.review_challenger(
        rows,
        rows[[f"challenger_{c}" for c in PROBABILITIES]].to_numpy(dtype=np.float64),
        rows[[f"champion_{c}" for c in PROBABILITIES]].to_numpy(dtype=np.float64),
        int(next(iter(horizons))),
        level,
        config.min_rows,
        (as_of - challenger.created_at) / timedelta(days=1),
        config.max_age_days,
        config.min_blocks,
    )
