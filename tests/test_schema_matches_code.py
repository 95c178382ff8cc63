"""The SQL schema is the source of truth; the code's column lists must agree with it."""

from __future__ import annotations

from pipeline_assets.features.ohlcv_features import FEATURE_COLUMNS
from pipeline_assets.features.sentiment import SENTIMENT_FEATURE_COLUMNS
from pipeline_assets.store.db import connect
from pipeline_assets.store.warehouse import OHLCV_FEATURE_COLUMNS_SQL, WAREHOUSE_TABLES


def _columns(url: str, table: str) -> list[str]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    return [r[0] for r in rows]


def test_feature_tables_hold_exactly_the_feature_columns(database_url):
    ohlcv = _columns(database_url, "ml_features_ohlcv")
    assert ohlcv == ["symbol", "ts", "feature_set_id", *FEATURE_COLUMNS, "computed_at"]
    assert [c.strip() for c in OHLCV_FEATURE_COLUMNS_SQL.split(",")] == list(FEATURE_COLUMNS)
    sentiment = _columns(database_url, "ml_features_sentiment")
    assert sentiment == ["symbol", "ts", "feature_set_id", *SENTIMENT_FEATURE_COLUMNS, "computed_at"]


def test_every_warehouse_table_exists(database_url):
    for table in WAREHOUSE_TABLES:
        assert _columns(database_url, table), table
