"""Feature families, each declared once: name, table, columns, parameters, lookback, inputs,
version and the function that computes a range of days.

From these declarations come the feature tables' expected columns (``tests/test_schema_matches_code``
checks them against the SQL migrations, the schema's source of truth), the lookback of the
assets' partition mappings, the model input join (``store.warehouse.read_model_inputs``), the
feature-set ids and the ``feature_sets`` registry rows. Adding a family = its compute module,
one ``FeatureFamily`` here (with a ``compute_days``) and its migration; ``assets/families.py``
builds the asset from the declaration.

Feature-set id of a family: ``<prefix>-`` + the first 12 hex digits of SHA-256 over its sorted
column names, parameters and version (the OHLCV and sentiment families keep the ids their rows
and models were stored with). The model's feature set combines the ids of the families it uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline_assets.contracts.versioning import content_id
from pipeline_assets.features import cross_asset, mtf, ohlcv_ext, ohlcv_features, sentiment
from pipeline_assets.features import derivatives as derivative_features


@dataclass(frozen=True)
class FeatureFamily:
    name: str
    table: str
    columns: tuple[str, ...]
    params: dict
    version: int
    lookback_hours: int
    inputs: tuple[str, ...]  # raw tables (and assets) the family reads
    feature_set_id: str
    # (bars of every symbol for [start - lookback, end), day keys, symbols) -> rows (symbol, ts, columns)
    compute_days: Callable[[pd.DataFrame, Sequence[str], Sequence[str]], pd.DataFrame] | None = None
    # columns whose NULLs a model may see (a family that is absent for some rows, like sentiment)
    description: str = ""
    extra_columns: tuple[str, ...] = field(default_factory=tuple)  # stored diagnostics, not features
    # why a column can be NaN (reported with the NaN count per column in the asset's metadata)
    nan_reasons: tuple[tuple[str, str], ...] = ()

    @property
    def sql_columns(self) -> tuple[str, ...]:
        return (*self.columns, *self.extra_columns)


def _day_bounds(day: str) -> tuple[np.datetime64, np.datetime64]:
    start = np.datetime64(f"{day}T00:00:00", "us")
    return start, start + np.timedelta64(1, "D")


def _per_symbol_days(kernel: Callable, columns: tuple[str, ...], lookback_hours: int):
    """compute_days for a per-symbol family whose kernel computes rows [first, hi) from bars
    [lo, hi) (day-anchored warm-up: each day from exactly its own lookback)."""

    def compute(bars: pd.DataFrame, days: Sequence[str], symbols: Sequence[str]) -> pd.DataFrame:
        frames = []
        for symbol in symbols:
            own = bars[bars["symbol"] == symbol].sort_values("ts")
            if own.empty:
                continue
            ts = own["ts"].to_numpy(dtype="datetime64[us]")
            values = {c: own[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")}
            hours = ts.astype("datetime64[h]").astype(np.int64)
            for day in days:
                start, end = _day_bounds(day)
                lo = int(np.searchsorted(ts, start - np.timedelta64(lookback_hours, "h"), side="left"))
                first = int(np.searchsorted(ts, start, side="left"))
                hi = int(np.searchsorted(ts, end, side="left"))
                if hi == first:
                    continue
                out = np.full((hi - first, len(columns)), np.nan)
                kernel(values, hours, lo, first, hi, out)
                frame = pd.DataFrame(out, columns=list(columns))
                frame.insert(0, "ts", pd.to_datetime(ts[first:hi]).tz_localize("UTC"))
                frame.insert(0, "symbol", symbol)
                frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=["symbol", "ts", *columns])
        return pd.concat(frames, ignore_index=True)

    return compute


def _ohlcv_kernel(values, hours, lo, first, hi, out):
    from pipeline_assets.features.indicators import ohlcv_range_at

    rows = np.stack([values[k] for k in ("open", "high", "low", "close", "volume")])
    ohlcv_range_at(rows, lo, first, hi, out, 0, 0)


def _ohlcv_ext_kernel(values, hours, lo, first, hi, out):
    o, h, low, c, v = (values[k] for k in ("open", "high", "low", "close", "volume"))
    ohlcv_ext.ohlcv_ext_range(o, h, low, c, v, lo, first, hi, out, 0)


def _mtf_kernel(values, hours, lo, first, hi, out):
    mtf.mtf_range(hours, values["high"], values["low"], values["close"], lo, first, hi, out, 0, 0)


def _cross_asset_days(bars: pd.DataFrame, days: Sequence[str], symbols: Sequence[str]) -> pd.DataFrame:
    reference = cross_asset.reference_symbol(symbols)
    lookback, one_day = pd.Timedelta(hours=cross_asset.LOOKBACK_HOURS), pd.Timedelta(days=1)
    frames = []
    for day in days:
        start = pd.Timestamp(day, tz="UTC")
        part = bars[(bars["ts"] >= start - lookback) & (bars["ts"] < start + one_day)]
        frames.append(cross_asset.compute_cross_asset_features(part, start, start + one_day, symbols, reference))
    if not frames:
        return pd.DataFrame(columns=["symbol", "ts", *cross_asset.CROSS_ASSET_COLUMNS, "reference_pairs_24h"])
    return pd.concat(frames, ignore_index=True)


OHLCV = FeatureFamily(
    name="ohlcv",
    table="ml_features_ohlcv",
    columns=ohlcv_features.FEATURE_COLUMNS,
    params=ohlcv_features.FEATURE_PARAMS,
    version=ohlcv_features.FEATURE_SET_VERSION,
    lookback_hours=ohlcv_features.LOOKBACK_HOURS,
    inputs=("raw_ohlcv",),
    feature_set_id=ohlcv_features.FEATURE_SET_ID,
    compute_days=_per_symbol_days(_ohlcv_kernel, ohlcv_features.FEATURE_COLUMNS, ohlcv_features.LOOKBACK_HOURS),
    description="Returns, RSI, EMA/MACD, Bollinger, ATR, volatility, volume and range per 1h bar.",
)
OHLCV_EXT = FeatureFamily(
    name="ohlcv_ext",
    table="ml_features_ohlcv_ext",
    columns=ohlcv_ext.EXT_COLUMNS,
    params=ohlcv_ext.EXT_PARAMS,
    version=ohlcv_ext.EXT_VERSION,
    lookback_hours=ohlcv_ext.EXT_LOOKBACK_HOURS,
    inputs=("raw_ohlcv",),
    feature_set_id=ohlcv_ext.EXT_SET_ID,
    compute_days=_per_symbol_days(_ohlcv_ext_kernel, ohlcv_ext.EXT_COLUMNS, ohlcv_ext.EXT_LOOKBACK_HOURS),
    description="SMA/EMA ratios, stochastic, ADX and DI, MFI, OBV slope, VWAP deviation, volume features.",
)
SENTIMENT = FeatureFamily(
    name="sentiment",
    table="ml_features_sentiment",
    columns=sentiment.SENTIMENT_FEATURE_COLUMNS,
    params=sentiment.SENTIMENT_PARAMS,
    version=1,
    lookback_hours=sentiment.LOOKBACK_HOURS,
    inputs=("raw_sentiment",),
    feature_set_id=sentiment.SENTIMENT_FEATURE_SET_ID,
    compute_days=None,  # its asset also needs the headline source's coverage (assets/features.py)
    description="Rolling VADER sentiment and headline counts as known at each bar's close.",
)
MTF = FeatureFamily(
    name="mtf",
    table="ml_features_mtf",
    columns=mtf.MTF_COLUMNS,
    params=mtf.MTF_PARAMS,
    version=mtf.MTF_VERSION,
    lookback_hours=mtf.MTF_LOOKBACK_HOURS,
    inputs=("raw_ohlcv",),
    feature_set_id=content_id(
        f"mtf-v{mtf.MTF_VERSION}",
        {"columns": sorted(mtf.MTF_COLUMNS), "params": mtf.MTF_PARAMS, "version": mtf.MTF_VERSION},
    ),
    compute_days=_per_symbol_days(_mtf_kernel, mtf.MTF_COLUMNS, mtf.MTF_LOOKBACK_HOURS),
    description="4h and 1d RSI, EMA ratio, ATR and return from closed, complete higher-timeframe bars.",
)


def _cross_asset_family() -> FeatureFamily:
    from pipeline_assets.partitions import SYMBOLS

    reference = cross_asset.reference_symbol(SYMBOLS)
    return FeatureFamily(
        name="cross_asset",
        table="ml_features_cross_asset",
        columns=cross_asset.CROSS_ASSET_COLUMNS,
        params={**cross_asset.CROSS_ASSET_PARAMS, "reference": reference},
        version=cross_asset.CROSS_ASSET_VERSION,
        lookback_hours=cross_asset.LOOKBACK_HOURS,
        inputs=("raw_ohlcv",),
        feature_set_id=cross_asset.cross_asset_set_id(reference),
        compute_days=_cross_asset_days,
        description=f"24h correlation and beta to {reference}, relative strength, cross-sectional rank and dispersion.",
        extra_columns=("reference_pairs_24h",),
    )


CROSS_ASSET = _cross_asset_family()
DERIVATIVES = FeatureFamily(
    name="derivatives",
    table="ml_features_derivatives",
    columns=derivative_features.DERIVATIVE_COLUMNS,
    params=derivative_features.DERIVATIVE_PARAMS,
    version=derivative_features.DERIVATIVE_VERSION,
    lookback_hours=derivative_features.LOOKBACK_HOURS,
    inputs=("market_aligned",),
    feature_set_id=derivative_features.DERIVATIVE_SET_ID,
    compute_days=derivative_features.derivative_days,
    description="Funding rate and its 30-day z-score, open-interest change, liquidation imbalance, long/short "
    "ratio, each with its staleness, from the aligned grid.",
    nan_reasons=tuple(derivative_features.NAN_REASONS.items()),
)
FAMILIES: dict[str, FeatureFamily] = {f.name: f for f in (OHLCV, OHLCV_EXT, SENTIMENT, MTF, CROSS_ASSET, DERIVATIVES)}
# Families whose columns the models see (in this order); adding one changes the model feature set.
MODEL_FAMILIES: tuple[str, ...] = ("ohlcv", "sentiment")


def model_feature_columns(names: Sequence[str] = MODEL_FAMILIES) -> tuple[str, ...]:
    return tuple(c for name in names for c in FAMILIES[name].columns)


def feature_set_payload(names: Sequence[str] = MODEL_FAMILIES) -> dict:
    return {
        "families": {n: {"feature_set_id": FAMILIES[n].feature_set_id, "version": FAMILIES[n].version} for n in names},
        "columns": list(model_feature_columns(names)),
        "params": {n: FAMILIES[n].params for n in names},
    }
