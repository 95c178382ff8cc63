"""Reads of the warehouse tables as DataFrames, each with an explicit time range."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd
import psycopg
from psycopg import sql

from pipeline_assets.features.families import FAMILIES
from pipeline_assets.store.feature_sets import (
    FamilyVersion,
    FeatureSetNotMaterialised,
    ModelFeatureSet,
    resolve_model_feature_set,
)
from pipeline_assets.store.frames import read_frame

__all__ = ["FeatureSetNotMaterialised", "read_model_inputs", "read_serving_inputs"]

WAREHOUSE_TABLES = (
    "raw_ohlcv",
    "raw_sentiment",
    "quarantine",
    "ml_features_ohlcv",
    "ml_features_sentiment",
    "ml_labels",
    "ml_models_metadata",
    "online_model_learned_rows",
    "ml_predictions",
    "ml_shadow_predictions",
    "trading_signals",
    "dashboard_data",
    "partition_watermarks",
    "model_performance",
    "model_artifact_ledger",
    "training_datasets",
    "raw_orderbook",
    "state_vector_layouts",
    "ml_state_vector_rows",
    "ml_patterns",
    "feature_sets",
    "ml_features_mtf",
    "ml_features_cross_asset",
    "raw_ohlcv_history",
    "model_promotion_decisions",
    "member_breakers",
    "ml_features_ohlcv_ext",
    "raw_funding_rates",
    "raw_open_interest",
    "raw_liquidations",
    "raw_long_short_ratio",
    "market_aligned",
    "ml_features_derivatives",
    "raw_sentiment_history",
    "liquidation_watch",
    "ml_return_predictions",
)

OHLCV_FEATURE_COLUMNS_SQL = (
    "log_return_1h, log_return_4h, log_return_24h, rsi_14, ema_ratio_12_26, macd_hist_pct, bb_pctb_20, "
    "atr_14_pct, realized_vol_24h, volume_zscore_24h, range_pct"
)


def _time_range(
    conn: psycopg.Connection,
    table: str,
    columns: str,
    symbols: Sequence[str],
    start: datetime,
    end: datetime,
    ts_column: str = "ts",
) -> pd.DataFrame:
    query = sql.SQL(
        "SELECT {cols} FROM {table} WHERE symbol = ANY(%s) AND {ts} >= %s AND {ts} < %s ORDER BY symbol, {ts}"
    ).format(cols=sql.SQL(columns), table=sql.Identifier(table), ts=sql.Identifier(ts_column))
    return read_frame(conn, query, (list(symbols), start, end))


def read_ohlcv(conn: psycopg.Connection, symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
    return _time_range(conn, "raw_ohlcv", "symbol, ts, open, high, low, close, volume", symbols, start, end)


def read_headlines(conn: psycopg.Connection, symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
    return _time_range(
        conn,
        "raw_sentiment",
        "symbol, published_at, headline_id, source, headline, compound",
        symbols,
        start,
        end,
        ts_column="published_at",
    )


def read_labels(conn: psycopg.Connection, symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
    return _time_range(
        conn,
        "ml_labels",
        "symbol, ts, label_set_id, horizon_hours, forward_return, direction, matured_at",
        symbols,
        start,
        end,
    )


def read_predictions(
    conn: psycopg.Connection, symbols: Sequence[str], start: datetime, end: datetime, model_name: str
) -> pd.DataFrame:
    return read_frame(
        conn,
        "SELECT symbol, ts, model_id, prob_sell, prob_hold, prob_buy, predicted_direction FROM ml_predictions "
        "WHERE symbol = ANY(%s) AND ts >= %s AND ts < %s AND model_name = %s ORDER BY symbol, ts",
        (list(symbols), start, end, model_name),
    )


ENSEMBLE_MODEL_NAME = "direction_ensemble"


def read_signal_predictions(
    conn: psycopg.Connection, symbols: Sequence[str], start: datetime, end: datetime, fallback_model: str
) -> pd.DataFrame:
    """The probabilities signals are made from: the ensemble's row where one exists (members behind
    circuit breakers, a fallback when none is usable), else ``fallback_model``'s row."""
    ensemble = read_predictions(conn, symbols, start, end, ENSEMBLE_MODEL_NAME)
    single = read_predictions(conn, symbols, start, end, fallback_model)
    if ensemble.empty:
        return single
    covered = single.merge(ensemble[["symbol", "ts"]], on=["symbol", "ts"], how="left", indicator=True)
    rest = single[(covered["_merge"] == "left_only").to_numpy()]
    return pd.concat([ensemble, rest], ignore_index=True).sort_values(["symbol", "ts"], ignore_index=True)


def read_leaking_predictions(conn: psycopg.Connection, start: datetime, end: datetime) -> pd.DataFrame:
    """Predictions in [start, end), champion rows and challengers' shadow rows alike, made by a
    model whose training labels matured at or after the predicted hour: the model saw the future it
    is predicting. ``source`` names the table of each row."""
    return read_frame(
        conn,
        """
        SELECT p.symbol, p.ts, p.model_name, p.model_id, m.labels_matured_until, p.source
        FROM (
            SELECT symbol, ts, model_name, model_id, 'ml_predictions' AS source FROM ml_predictions
            WHERE ts >= %s AND ts < %s
            UNION ALL
            SELECT symbol, ts, model_name, model_id, 'ml_shadow_predictions' FROM ml_shadow_predictions
            WHERE ts >= %s AND ts < %s
        ) p JOIN ml_models_metadata m ON m.model_id = p.model_id
        WHERE m.labels_matured_until >= p.ts
        ORDER BY p.ts, p.symbol, p.source
        """,
        (start, end, start, end),
    )


def read_shadow_comparison(
    conn: psycopg.Connection, challenger_id: int, champion_id: int, matured_by: datetime
) -> pd.DataFrame:
    """The challenger's shadow rows beside the champion's own ml_predictions rows for the same
    (symbol, ts), where the label matured by ``matured_by``: symbol, ts, direction, horizon_hours,
    challenger_prob_* and champion_prob_*, time-ordered."""
    return read_frame(
        conn,
        """
        SELECT s.symbol, s.ts, l.direction, l.horizon_hours,
               s.prob_sell AS challenger_prob_sell, s.prob_hold AS challenger_prob_hold,
               s.prob_buy AS challenger_prob_buy,
               p.prob_sell AS champion_prob_sell, p.prob_hold AS champion_prob_hold,
               p.prob_buy AS champion_prob_buy
        FROM ml_shadow_predictions s
        JOIN ml_predictions p
          ON p.symbol = s.symbol AND p.ts = s.ts AND p.model_name = s.model_name AND p.model_id = %s
        JOIN ml_labels l ON l.symbol = s.symbol AND l.ts = s.ts AND l.matured_at <= %s
        WHERE s.model_id = %s
        ORDER BY s.ts, s.symbol
        """,
        (champion_id, matured_by, challenger_id),
    )


def read_leaking_return_predictions(conn: psycopg.Connection, start: datetime, end: datetime) -> pd.DataFrame:
    """Return predictions in [start, end) made by a model whose training labels matured at or after
    the predicted hour (the rule of read_leaking_predictions, for ml_return_predictions)."""
    return read_frame(
        conn,
        """
        SELECT p.symbol, p.ts, p.horizon_hours, p.model_name, p.model_id, m.labels_matured_until
        FROM ml_return_predictions p JOIN ml_models_metadata m ON m.model_id = p.model_id
        WHERE p.ts >= %s AND p.ts < %s AND m.labels_matured_until >= p.ts
        ORDER BY p.ts, p.symbol, p.horizon_hours
        """,
        (start, end),
    )


def read_return_predictions(
    conn: psycopg.Connection, symbols: Sequence[str], start: datetime, end: datetime, model_name: str
) -> pd.DataFrame:
    return read_frame(
        conn,
        "SELECT symbol, ts, horizon_hours, model_id, predicted_return, matures_at, predicted_at "
        "FROM ml_return_predictions WHERE symbol = ANY(%s) AND ts >= %s AND ts < %s AND model_name = %s "
        "ORDER BY symbol, ts, horizon_hours",
        (list(symbols), start, end, model_name),
    )


def latest_ts_by_symbol(
    conn: psycopg.Connection, table: str, symbols: Sequence[str], as_of: datetime
) -> dict[str, datetime]:
    """Newest ``ts`` at or before ``as_of`` per symbol (symbols without rows are absent)."""
    query = sql.SQL("SELECT symbol, max(ts) FROM {} WHERE symbol = ANY(%s) AND ts <= %s GROUP BY symbol").format(
        sql.Identifier(table)
    )
    return {symbol: ts for symbol, ts in conn.execute(query, (list(symbols), as_of)).fetchall()}


def read_symbols(conn: psycopg.Connection, table: str) -> list[str]:
    query = sql.SQL("SELECT DISTINCT symbol FROM {} ORDER BY symbol").format(sql.Identifier(table))
    return [row[0] for row in conn.execute(query).fetchall()]


def read_signals(conn: psycopg.Connection, symbols: Sequence[str], start: datetime, end: datetime) -> pd.DataFrame:
    return _time_range(
        conn,
        "trading_signals",
        "symbol, ts, model_id, signal, position, edge, signal_rule_id",
        symbols,
        start,
        end,
    )


def model_inputs_sql(names: Sequence[str] | None = None, feature_set: ModelFeatureSet | None = None) -> str:
    """The model input join generated from the family declarations (or from a resolved model
    feature set, which fixes each family's version and columns): the first family's table is the
    base (its rows define the model's rows), the others are LEFT JOINed on (symbol, ts) and may be
    absent (NULL); every table is filtered to its family's feature_set_id, so rows of other
    versions stored beside them are never mixed in. Every feature is read as float8; each family's
    id comes along as <family>_feature_set_id."""
    from pipeline_assets.features.families import FAMILIES, MODEL_FAMILIES

    if feature_set is None:
        families = [
            FamilyVersion(n, FAMILIES[n].table, FAMILIES[n].feature_set_id, FAMILIES[n].columns)
            for n in (names or MODEL_FAMILIES)
        ]
    else:
        families = list(feature_set.families)
    aliases = {f.name: f"f{i}" for i, f in enumerate(families)}
    base = aliases[families[0].name]
    select = [f"{base}.symbol", f"{base}.ts"]
    joins = [f"FROM {families[0].table} {base}"]
    for family in families:
        alias = aliases[family.name]
        # ids are validated (letters, digits, '.', '_', '+', '-') before they get here
        version = sql.Literal(family.feature_set_id).as_string(None)
        select.append(f"{alias}.feature_set_id AS {family.name}_feature_set_id")
        select.extend(f"{alias}.{c}::float8 AS {c}" for c in family.columns)
        if alias != base:
            on = f"{alias}.symbol = {base}.symbol AND {alias}.ts = {base}.ts AND {alias}.feature_set_id = {version}"
            joins.append(f"LEFT JOIN {family.table} {alias} ON {on}")
        else:
            base_version = version
    where = (
        f"WHERE {base}.symbol = ANY(%s) AND {base}.ts >= %s AND {base}.ts < %s "
        f"AND {base}.feature_set_id = {base_version}"
    )
    return f"SELECT {', '.join(select)} {' '.join(joins)} {where} ORDER BY {base}.ts, {base}.symbol"


def read_model_inputs(
    conn: psycopg.Connection,
    symbols: Sequence[str],
    start: datetime,
    end: datetime,
    feature_set_id: str | None = None,
) -> pd.DataFrame:
    """The model families' features joined on (symbol, ts) (see model_inputs_sql), of the model
    feature set ``feature_set_id`` (default: the current code's, ml.dataset.MODEL_FEATURE_SET_ID).
    Empty when nothing is stored; read_serving_inputs makes that an error."""
    feature_set = resolve_model_feature_set(conn, feature_set_id)
    return read_frame(conn, model_inputs_sql(feature_set=feature_set), (list(symbols), start, end))


def read_serving_inputs(
    conn: psycopg.Connection, feature_set_id: str, symbols: Sequence[str], start: datetime, end: datetime
) -> pd.DataFrame:
    """Model inputs of the feature set a model was trained on (its ``feature_set_id``) for
    serving. Raises FeatureSetNotMaterialised naming the id, the tables and the range when a table
    of that feature set holds no row of its family version for these symbols in [start, end):
    predicting would otherwise use nothing, or rows of another version."""
    try:
        feature_set = resolve_model_feature_set(conn, feature_set_id)
    except FeatureSetNotMaterialised as exc:
        raise FeatureSetNotMaterialised(exc.feature_set_id, exc.tables, start, end, exc.detail) from None
    missing, others = [], {}
    for family in feature_set.families:
        present = conn.execute(
            sql.SQL(
                "SELECT EXISTS (SELECT 1 FROM {} "
                "WHERE feature_set_id = %s AND symbol = ANY(%s) AND ts >= %s AND ts < %s)"
            ).format(sql.Identifier(family.table)),
            (family.feature_set_id, list(symbols), start, end),
        ).fetchone()[0]
        if not present:
            missing.append(family)
            rows = conn.execute(
                sql.SQL(
                    "SELECT DISTINCT feature_set_id FROM {} WHERE symbol = ANY(%s) AND ts >= %s AND ts < %s "
                    "ORDER BY 1 LIMIT 5"
                ).format(sql.Identifier(family.table)),
                (list(symbols), start, end),
            ).fetchall()
            others[family.table] = [r[0] for r in rows]
    if missing:
        parts = []
        for family in missing:
            stored = others[family.table]
            seen = f"rows there carry {', '.join(stored)}" if stored else "no rows of any version there"
            parts.append(f"{family.table} has no rows of {family.name} version {family.feature_set_id} ({seen})")
        raise FeatureSetNotMaterialised(
            feature_set.feature_set_id,
            [f.table for f in missing],
            start,
            end,
            f"symbols {sorted(symbols)}: {'; '.join(parts)}; materialise those features with the code of that "
            "version or retrain the model on the current features",
        )
    return read_frame(conn, model_inputs_sql(feature_set=feature_set), (list(symbols), start, end))


def read_labelled_model_inputs(
    conn: psycopg.Connection,
    symbols: Sequence[str],
    start: datetime,
    end: datetime,
    matured_by: datetime,
    feature_set_id: str | None = None,
) -> pd.DataFrame:
    """Model inputs (of ``feature_set_id``, default the current one) joined with labels that had
    matured by ``matured_by`` (training rows)."""
    inputs = read_model_inputs(conn, symbols, start, end, feature_set_id)
    labels = read_frame(
        conn,
        "SELECT symbol, ts, label_set_id, forward_return, direction, matured_at FROM ml_labels "
        "WHERE symbol = ANY(%s) AND ts >= %s AND ts < %s AND matured_at < %s",
        (list(symbols), start, end, matured_by),
    )
    return inputs.merge(labels, on=["symbol", "ts"], how="inner").sort_values(["ts", "symbol"], ignore_index=True)


def read_unlearned_rows(
    conn: psycopg.Connection, model_name: str, limit: int, after: tuple[datetime, str] | None = None
) -> pd.DataFrame:
    """Matured labelled rows (with model inputs) that the online model has not learned yet, oldest
    first; ``after`` = the (ts, symbol) of the previous page's last row (keyset pagination)."""
    after_ts, after_symbol = after if after else (datetime.min.replace(tzinfo=UTC), "")
    labels = read_frame(
        conn,
        """
        SELECT l.symbol, l.ts, l.label_set_id, l.direction, l.matured_at
        FROM ml_labels l
        WHERE NOT EXISTS (SELECT 1 FROM online_model_learned_rows r
                          WHERE r.model_name = %s AND r.symbol = l.symbol AND r.ts = l.ts)
          AND EXISTS (SELECT 1 FROM ml_features_ohlcv f
                      WHERE f.symbol = l.symbol AND f.ts = l.ts AND f.feature_set_id = %s)
          AND (l.ts, l.symbol) > (%s, %s)
        ORDER BY l.ts, l.symbol
        LIMIT %s
        """,
        (model_name, FAMILIES["ohlcv"].feature_set_id, after_ts, after_symbol, limit),
    )
    if labels.empty:
        return labels
    inputs = read_model_inputs(
        conn,
        sorted(labels["symbol"].unique()),
        labels["ts"].min().to_pydatetime(),
        labels["ts"].max().to_pydatetime() + pd.Timedelta(microseconds=1),
    )
    return labels.merge(inputs, on=["symbol", "ts"], how="inner").sort_values(["ts", "symbol"], ignore_index=True)


def table_counts(conn: psycopg.Connection) -> dict[str, int]:
    counts = {}
    for table in WAREHOUSE_TABLES:
        (count,) = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
        counts[table] = int(count)
    return counts


def truncate_all(conn: psycopg.Connection) -> None:
    """Empty every warehouse table (tests and demo resets); the migration ledger stays."""
    conn.execute(
        sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in WAREHOUSE_TABLES)
        )
    )


def read_active_detections(conn, symbols, start: datetime, end: datetime) -> pd.DataFrame:
    """The ml_patterns rows that can be active at some bar in [start, end): detected before
    ``end`` and not yet expired at ``start``."""
    return read_frame(
        conn,
        "SELECT symbol, ts, score, direction::double precision AS direction, expected_completion_hours "
        "FROM ml_patterns WHERE symbol = ANY(%s) AND ts < %s "
        "AND ts + expected_completion_hours * interval '1 hour' > %s ORDER BY ts, symbol, pattern",
        (list(symbols), end, start),
    )
