"""End-to-end demo: materialise the whole graph for N days of hourly data and print a summary.

    python -m pipeline_assets.demo [--days 60] [--symbols BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT]

Uses PIPELINE_DATABASE_URL when set, otherwise an embedded PostgreSQL under .demo/pgdata.
Runs are recorded in the Dagster instance of DAGSTER_HOME (ephemeral when unset), so
`make dev` afterwards shows them in the UI. The XGBoost model is trained on the first 70%
of the days; predictions, signals and dashboard rows cover the remaining days, out of sample.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta

import pandas as pd

TRAIN_FRACTION = 0.7
# 4 days of indicator warm-up + enough complete rows to train (300) + a few days to predict.
MIN_DAYS = 12
MIN_TRAIN_DAYS = 8
# Runs still record every event in the instance (and the UI); only console output is quiet.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=60, help=f"days of hourly data (>= {MIN_DAYS})")
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT")
    parser.add_argument("--end", default=None, help="last day (YYYY-MM-DD, default yesterday UTC)")
    args = parser.parse_args(argv)
    if args.days < MIN_DAYS:
        parser.error(f"--days must be at least {MIN_DAYS} (4 warm-up days, training rows, out-of-sample days)")
    return args


class DemoFailed(RuntimeError):
    """The demo's backfill did not complete; the message names each failed step and its cause."""


def run_demo(days: int, symbols: list[str], last_day: date, database_url: str, echo=print) -> dict:
    """Materialise everything as one Dagster asset backfill (recorded in DAGSTER_HOME's instance,
    or a temporary one); returns the summary numbers."""
    import tempfile

    from dagster import build_sensor_context

    from pipeline_assets.cli.backfill import QUIET_RUNS, configure_environment, open_instance, run_asset_backfill

    first_day = last_day - timedelta(days=days - 1)
    configure_environment(symbols=symbols, partition_start=first_day.isoformat(), database_url=database_url)
    temporary_home = None
    if not os.environ.get("DAGSTER_HOME"):
        temporary_home = tempfile.TemporaryDirectory(prefix="pipeline_demo_dagster_")
        os.environ["DAGSTER_HOME"] = temporary_home.name
    definitions = importlib.import_module("pipeline_assets.definitions")
    from pipeline_assets.assets.models import RETRAINED_MODELS, retrain_run_config
    from pipeline_assets.automation.sensors import labelled_rows_sensor
    from pipeline_assets.store.db import connect
    from pipeline_assets.store.warehouse import table_counts

    defs = definitions.defs
    instance = open_instance()
    started = time.monotonic()
    day_keys = [(first_day + timedelta(days=i)).isoformat() for i in range(days)]
    train_days = max(MIN_TRAIN_DAYS, int(days * TRAIN_FRACTION))
    cutoff = datetime.combine(first_day + timedelta(days=train_days), datetime.min.time(), tzinfo=UTC)
    predict_days = [d for d in day_keys if d >= cutoff.date().isoformat()]
    echo(f"ingesting {days} days x {len(symbols)} symbols ({day_keys[0]} .. {day_keys[-1]}) ...")
    echo(f"training direction_model_xgboost on labels matured by {cutoff.isoformat()} ...")
    echo(f"predicting {len(predict_days)} out-of-sample days ...")
    targets: dict[str, list[str] | None] = {name: day_keys for name in definitions.INGESTION_ASSET_NAMES}
    targets["training_dataset"] = None
    targets.update({name: None for name in RETRAINED_MODELS})
    targets.update({name: predict_days for name in definitions.INFERENCE_ASSET_NAMES})
    outcome = run_asset_backfill(
        instance,
        targets,
        title=f"demo {day_keys[0]}..{day_keys[-1]} ({len(symbols)} symbols)",
        run_config={**QUIET_RUNS, **retrain_run_config(cutoff, train_days=train_days, models=RETRAINED_MODELS)},
        echo=echo,
    )
    if outcome.failed_runs or outcome.status != "COMPLETED_SUCCESS":
        raise DemoFailed(
            f"demo backfill {outcome.backfill_id} ended {outcome.status}: "
            + ("; ".join(outcome.failures) or f"failed runs {outcome.failed_runs}")
        )
    runs = outcome.runs

    sensor_context = build_sensor_context(instance=instance, definitions=defs)
    tick = labelled_rows_sensor(sensor_context)
    online_requests = len(getattr(tick, "run_requests", None) or [])
    if online_requests:
        echo("labelled_rows_sensor requested an online update; running online_update_job ...")
        step = time.monotonic()
        result = defs.resolve_job_def("online_update_job").execute_in_process(
            instance=instance, raise_on_error=True, run_config=QUIET_RUN_CONFIG
        )
        runs += 1
        if not result.success:
            raise RuntimeError("online_update_job failed")
        echo(f"  online_update_job {time.monotonic() - step:.1f}s")

    with connect(database_url) as conn:
        counts = table_counts(conn)
        model = conn.execute(
            "SELECT model_id, version, status, metrics FROM ml_models_metadata "
            "WHERE model_name = 'direction_xgboost' ORDER BY version DESC LIMIT 1"
        ).fetchone()
        online_model = conn.execute(
            "SELECT version, metrics FROM ml_models_metadata WHERE model_name = 'direction_river' "
            "ORDER BY version DESC LIMIT 1"
        ).fetchone()
        quality = conn.execute(
            """
            SELECT count(*), avg((p.predicted_direction = l.direction)::int),
                   avg((l.direction = 1)::int)
            FROM ml_predictions p JOIN ml_labels l USING (symbol, ts)
            """
        ).fetchone()
        trades = conn.execute(
            "SELECT count(*), avg((strategy_return > 0)::int), sum(strategy_return) FROM dashboard_data "
            "WHERE position <> 0 AND strategy_return IS NOT NULL"
        ).fetchone()
        return_model = conn.execute(
            "SELECT version, status, metrics FROM ml_models_metadata WHERE model_name = 'return_ridge' "
            "ORDER BY version DESC LIMIT 1"
        ).fetchone()
        (return_rows,) = conn.execute("SELECT count(*) FROM ml_return_predictions").fetchone()
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        members = conn.execute(
            "SELECT DISTINCT ON (model_name) model_name, version, status, metrics->'test_vs_baselines' "
            "FROM ml_models_metadata WHERE model_name IN ('direction_linear', 'direction_patterns') "
            "ORDER BY model_name, version DESC"
        ).fetchall()
        realised = conn.execute(
            "SELECT count(*), sum(matured_rows), sum(log_loss * matured_rows) / nullif(sum(matured_rows), 0), "
            "max(reference_log_loss), sum(priors_log_loss * matured_rows) / nullif(sum(matured_rows), 0), "
            "sum(accuracy * matured_rows) / nullif(sum(matured_rows), 0), "
            "sum(majority_accuracy * matured_rows) / nullif(sum(matured_rows), 0), "
            "sum(persistence_accuracy * persistence_rows) / nullif(sum(persistence_rows), 0) "
            "FROM model_performance WHERE model_name = 'direction_xgboost'"
        ).fetchone()
    summary = {
        "runs": runs,
        "seconds": round(time.monotonic() - started, 1),
        "counts": counts,
        "model": {
            "model_id": model[0],
            "version": model[1],
            "status": model[2],
            "test": model[3]["test"],
            "test_vs_baselines": model[3].get("test_vs_baselines"),
        },
        "out_of_sample": {
            "rows": quality[0],
            "accuracy": _f(quality[1]),
            "always_hold_accuracy": _f(quality[2]),
        },
        "trades": {"count": trades[0], "hit_rate": _f(trades[1]), "sum_return": _f(trades[2])},
        "online": {"version": online_model[0], **online_model[1]} if online_model else None,
        "online_requests": online_requests,
        "return_model": {"version": return_model[0], "status": return_model[1], "metrics": return_model[2]}
        if return_model
        else None,
        "return_predictions": return_rows,
        "quarantined": quarantined,
        "members": [
            {"model_name": m[0], "version": m[1], "status": m[2], "test_vs_baselines": m[3]} for m in members if m[3]
        ],
        "performance": {
            "days": realised[0],
            "rows": realised[1],
            "log_loss": _f(realised[2]),
            "reference_log_loss": _f(realised[3]),
            "priors_log_loss": _f(realised[4]),
            "accuracy": _f(realised[5]),
            "training_majority_accuracy": _f(realised[6]),
            "persistence_accuracy": _f(realised[7]),
        },
    }
    _print_summary(summary, echo)
    return summary


def _f(value) -> float | None:
    return None if value is None else float(value)


def _print_summary(s: dict, echo) -> None:
    echo("")
    echo(f"== demo summary: one asset backfill, {s['runs']} Dagster runs in {s['seconds']}s ==")
    echo(pd.Series(s["counts"], name="rows").to_frame().to_markdown())
    test = s["model"]["test"]
    echo(
        f"\ndirection_xgboost v{s['model']['version']} ({s['model']['status']}), held-out test slice beside its "
        "baselines (training-window class priors, majority class, persistence of the last matured label):"
    )
    vs = s["model"].get("test_vs_baselines")
    if vs:
        for name, values in vs["metrics"].items():
            loss = f"log loss {values['log_loss']:.4f}" if "log_loss" in values else "log loss    n/a"
            echo(f"  {name:<15} {loss}  accuracy {values['accuracy']:.4f}")
        for key in ("log_loss_minus_class_priors", "log_loss_minus_persistence"):
            diff = vs["differences"][key]
            echo(
                f"  model {key.replace('_', ' ')}: {diff['value']:+.4f} (95% CI {diff['ci95'][0]:+.4f} .. "
                f"{diff['ci95'][1]:+.4f})"
            )
        echo(f"  verdict: the model {vs['verdict']}")
    else:
        echo(f"  accuracy {test['accuracy']:.3f}, log loss {test['log_loss']:.3f} (no baseline report stored)")
    for member in s.get("members", []):
        metrics = member["test_vs_baselines"]["metrics"]
        echo(
            f"{member['model_name']} v{member['version']} ({member['status']}), held-out log loss "
            f"{metrics['model']['log_loss']:.4f} vs class priors {metrics['class_priors']['log_loss']:.4f} and "
            f"persistence {metrics['persistence']['log_loss']:.4f}: {member['test_vs_baselines']['verdict']}"
        )
    perf = s["performance"]
    if perf["days"]:
        echo(
            f"realised on {perf['days']} out-of-sample days ({perf['rows']} matured rows): log loss "
            f"{perf['log_loss']:.4f} vs class priors {perf['priors_log_loss']:.4f} "
            f"(held-out {perf['reference_log_loss']:.4f}); "
            f"accuracy {perf['accuracy']:.4f} vs training majority {perf['training_majority_accuracy']:.4f} "
            f"and persistence {perf['persistence_accuracy']:.4f}"
        )
    trades = s["trades"]
    if trades["count"]:
        echo(
            f"signals taken: {trades['count']}, hit rate {trades['hit_rate']:.3f}, "
            f"sum of 4h strategy returns {trades['sum_return']:+.4f}"
        )
    else:
        echo("signals taken: 0 (no hour's BUY/SELL edge cleared the signal rule; every signal is HOLD)")
    if s["online"]:
        acc = s["online"].get("prequential_accuracy")
        echo(
            f"direction_river v{s['online']['version']}: {s['online']['rows_learned']} rows learned, "
            f"prequential accuracy {acc:.3f}"
            if acc is not None
            else "direction_river: no rows learned"
        )
    _print_return_model(s.get("return_model"), s.get("return_predictions", 0), echo)
    echo(f"quarantined rows: {s['quarantined']}")


def _print_return_model(model: dict | None, predictions: int, echo) -> None:
    """The forward-return member's held-out metrics per horizon beside its baselines."""
    if model is None:
        echo("return_ridge: not trained")
        return
    echo(
        f"return_ridge v{model['version']} ({model['status']}), {predictions} return predictions; held-out test "
        "slice per horizon beside zero return, training-window mean and persistence of the last matured return:"
    )

    def fmt(value, spec):
        return "  n/a " if value is None else format(value, spec)

    for horizon, entry in model["metrics"]["horizons"].items():
        report = entry["test_vs_baselines"]
        for name, values in report["metrics"].items():
            echo(
                f"  {horizon:>2}h {name:<14} MAE {values['mae']:.6f}  RMSE {values['rmse']:.6f}  "
                f"IC {fmt(values['ic'], '+.4f')}  hit rate {fmt(values['hit_rate'], '.4f')}"
            )
        for name in ("zero_return", "training_mean", "persistence"):
            diff = report["differences"][f"squared_error_minus_{name}"]
            echo(
                f"  {horizon:>2}h model squared error minus {name}: {diff['value']:+.3e} "
                f"(95% CI {diff['ci95'][0]:+.3e} .. {diff['ci95'][1]:+.3e})"
            )
        echo(f"  verdict {report['verdict']}")
    for reason in model["metrics"].get("skipped_horizons", {}).values():
        echo(f"  not trained: {reason}")
    echo(f"  overall: the return model {model['metrics']['verdict']}")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    last_day = date.fromisoformat(args.end) if args.end else datetime.now(UTC).date() - timedelta(days=1)
    from pipeline_assets.local_db import database_url

    try:
        url, server = database_url()
        if server is not None:
            print(f"embedded PostgreSQL: {url}")
        run_demo(args.days, symbols, last_day, url)
    except DemoFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # configuration (symbols, dates, URLs, timeouts): one line, no traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
