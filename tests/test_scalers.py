"""Train-only scalers: statistics from the training slice alone, per symbol, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

from pipeline_assets.ml import scalers
from pipeline_assets.ml.direction_xgb import purged_time_split

COLUMNS = ("x", "y")
SKLEARN = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    ts = pd.date_range("2024-03-01", periods=200, freq="h", tz="UTC")
    parts = []
    for symbol, (loc, spread) in {"AAA": (100.0, 5.0), "BBB": (-3.0, 0.2)}.items():
        parts.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "ts": ts,
                    "x": rng.normal(loc, spread, len(ts)),
                    "y": rng.lognormal(0.0, 1.0, len(ts)) * spread,
                    "matured_at": ts + pd.Timedelta(hours=5),
                }
            )
        )
    return pd.concat(parts, ignore_index=True).sort_values(["ts", "symbol"], ignore_index=True)


@pytest.mark.parametrize("kind", scalers.KINDS)
@pytest.mark.parametrize("per_symbol", [False, True])
def test_validation_and_test_rows_never_change_the_fitted_scaler(frame, kind, per_symbol):
    split = purged_time_split(frame, 0.15, 0.15)
    fitted = scalers.fit(split.train, COLUMNS, kind, per_symbol)
    perturbed = frame.copy()
    later = perturbed["ts"] >= split.validation["ts"].min()
    perturbed.loc[later, "x"] = perturbed.loc[later, "x"] * 1000 + 55.0
    perturbed.loc[later, "y"] = -perturbed.loc[later, "y"]
    refit = scalers.fit(purged_time_split(perturbed, 0.15, 0.15).train, COLUMNS, kind, per_symbol)
    assert refit.to_dict() == fitted.to_dict()
    # Sensitivity: statistics taken over all rows would have moved.
    assert scalers.fit(perturbed, COLUMNS, kind, per_symbol).to_dict() != fitted.to_dict()
    # Later rows are transformed with the training statistics, not re-centred on themselves.
    test_scaled = fitted.transform(perturbed[later])
    assert abs(test_scaled["x"].mean()) > 10


@pytest.mark.parametrize("kind", scalers.KINDS)
def test_per_symbol_statistics_equal_sklearn_fitted_on_each_symbol(frame, kind):
    fitted = scalers.fit(frame, COLUMNS, kind, per_symbol=True)
    out = fitted.transform(frame)
    for symbol in ("AAA", "BBB"):
        rows = frame["symbol"] == symbol
        expected = SKLEARN[kind]().fit_transform(frame.loc[rows, list(COLUMNS)].to_numpy())
        np.testing.assert_allclose(out.loc[rows, list(COLUMNS)].to_numpy(), expected, rtol=1e-12, atol=1e-12)
        assert fitted.symbol_stats[symbol].rows == int(rows.sum())
    global_expected = SKLEARN[kind]().fit_transform(frame[list(COLUMNS)].to_numpy())
    global_out = scalers.fit(frame, COLUMNS, kind).transform(frame)[list(COLUMNS)].to_numpy()
    np.testing.assert_allclose(global_out, global_expected, rtol=1e-12, atol=1e-12)
    # Other columns pass through untouched; the input frame is not modified.
    pd.testing.assert_series_equal(out["ts"], frame["ts"])
    assert frame["x"].abs().max() > 50


@pytest.mark.parametrize("per_symbol", [False, True])
def test_json_round_trip_is_exact(frame, per_symbol):
    fitted = scalers.fit(frame, COLUMNS, "robust", per_symbol)
    text = json.dumps(fitted.to_dict())
    restored = scalers.Scaler.from_dict(json.loads(text))
    assert restored == fitted
    assert restored.scaler_id == fitted.scaler_id
    pd.testing.assert_frame_equal(restored.transform(frame), fitted.transform(frame))
    tampered = json.loads(text)
    tampered["global"]["center"][0] += 1e-9
    with pytest.raises(scalers.ScalerError, match="hash to"):
        scalers.Scaler.from_dict(tampered)
    with pytest.raises(scalers.ScalerError, match="format"):
        scalers.Scaler.from_dict({**json.loads(text), "format": "pickle"})


def test_unseen_symbol_is_named_or_uses_global_stats_when_asked(frame):
    train = frame[frame["symbol"] == "AAA"]
    new = frame[frame["symbol"] == "BBB"].assign(symbol="NEWUSDT")
    strict = scalers.fit(train, COLUMNS, "standard", per_symbol=True)
    with pytest.raises(scalers.UnseenSymbolError, match=r"NEWUSDT.*2024-03-01T00:00:00\+00:00"):
        strict.transform(new)
    lenient = scalers.fit(train, COLUMNS, "standard", per_symbol=True, unseen_symbol="global")
    assert lenient.unseen_symbols(pd.concat([train, new])) == ["NEWUSDT"]
    out = lenient.transform(new)
    center, scale = np.array(lenient.global_stats.center), np.array(lenient.global_stats.scale)
    np.testing.assert_allclose(out[list(COLUMNS)].to_numpy(), (new[list(COLUMNS)].to_numpy() - center) / scale)


def test_constant_column_gets_scale_one_and_is_listed(frame):
    data = frame.assign(x=3.5)
    fitted = scalers.fit(data, COLUMNS, "standard", per_symbol=True)
    assert fitted.global_stats.scale[0] == 1.0
    assert "x" in fitted.constant_columns and "AAA:x" in fitted.constant_columns
    assert (fitted.transform(data)["x"] == 0.0).all()
    assert fitted.transform(data.assign(x=4.5))["x"].eq(1.0).all()  # raw deviation, no division by zero


def test_missing_values_refused_at_fit_and_kept_missing_at_transform(frame):
    bad = frame.copy()
    bad.loc[7, "y"] = np.nan
    with pytest.raises(scalers.ScalerError, match=r"column 'y', symbol BBB, ts 2024-03-01T03:00:00\+00:00"):
        scalers.fit(bad, COLUMNS)
    fitted = scalers.fit(frame, COLUMNS)
    out = fitted.transform(bad)
    assert np.isnan(out.loc[7, "y"]) and out["y"].isna().sum() == 1
    with pytest.raises(scalers.ScalerError, match=r"lacks column\(s\) \['z'\]"):
        scalers.fit(frame, ("x", "z"))
    with pytest.raises(scalers.ScalerError, match="unknown scaler kind"):
        scalers.fit(frame, COLUMNS, "quantile")
