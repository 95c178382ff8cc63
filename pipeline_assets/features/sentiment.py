"""Headline sentiment: VADER scores per headline and hourly rolling aggregates per symbol."""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import lru_cache

import numpy as np
import pandas as pd
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from pipeline_assets.contracts.versioning import content_id

SENTIMENT_FEATURE_COLUMNS = (
    "sentiment_mean_6h",
    "sentiment_mean_24h",
    "sentiment_min_6h",
    "sentiment_max_6h",
    "headline_count_6h",
    "headline_count_24h",
)
SENTIMENT_PARAMS = {"short_window_hours": 6, "long_window_hours": 24, "scorer": "vader-3.3.2-compound"}
SENTIMENT_FEATURE_SET_ID = content_id("sent-v1", {"columns": SENTIMENT_FEATURE_COLUMNS, "params": SENTIMENT_PARAMS})
LOOKBACK_HOURS: int = SENTIMENT_PARAMS["long_window_hours"]


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def headline_id(source: str, published_at: pd.Timestamp, headline: str) -> str:
    return hashlib.sha256(f"{source}|{published_at.isoformat()}|{headline}".encode()).hexdigest()[:20]


def score_headlines(headlines: pd.DataFrame) -> pd.DataFrame:
    """Add VADER polarity scores (compound, positive, neutral, negative) and a stable headline_id."""
    missing = [c for c in ("published_at", "symbol", "source", "headline") if c not in headlines.columns]
    if missing:
        raise ValueError(f"headline frame lacks column(s) {missing}")
    analyzer = _analyzer()
    scores = [analyzer.polarity_scores(text) for text in headlines["headline"]]
    out = headlines.copy()
    out["compound"] = [s["compound"] for s in scores]
    out["positive"] = [s["pos"] for s in scores]
    out["neutral"] = [s["neu"] for s in scores]
    out["negative"] = [s["neg"] for s in scores]
    given = out["headline_id"] if "headline_id" in out.columns else pd.Series([None] * len(out), index=out.index)
    out["headline_id"] = [
        str(own) if isinstance(own, str) and own else headline_id(src, ts, text)
        for own, src, ts, text in zip(given, out["source"], out["published_at"], out["headline"], strict=True)
    ]
    return out


def compute_sentiment_features(headlines: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """One row per hourly bar t in [start, end) for one symbol.

    Row t describes headlines published in the window ending when bar t closes (t + 1h),
    the moment a prediction for bar t is made; an hour with no headlines has count 0 and
    neutral (0.0) sentiment. ``headlines`` needs published_at and compound and must cover
    the 24 hours before ``start``.
    """
    hours = pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="h", inclusive="left")
    published = (
        headlines["published_at"].to_numpy(dtype="datetime64[ns]")
        if len(headlines)
        else np.array([], dtype="datetime64[ns]")
    )
    order = np.argsort(published, kind="stable")
    published = published[order]
    compound = headlines["compound"].to_numpy(dtype=np.float64)[order] if len(headlines) else np.array([])
    close_times = (hours + pd.Timedelta(hours=1)).to_numpy(dtype="datetime64[ns]")
    out: dict[str, list] = {c: [] for c in SENTIMENT_FEATURE_COLUMNS}
    for window, suffix in (
        (SENTIMENT_PARAMS["short_window_hours"], "6h"),
        (SENTIMENT_PARAMS["long_window_hours"], "24h"),
    ):
        lo = np.searchsorted(published, close_times - np.timedelta64(window, "h"), side="left")
        hi = np.searchsorted(published, close_times, side="left")
        for a, b in zip(lo, hi, strict=True):
            chunk = compound[a:b]
            out[f"headline_count_{suffix}"].append(int(b - a))
            out[f"sentiment_mean_{suffix}"].append(float(chunk.mean()) if len(chunk) else 0.0)
            if suffix == "6h":
                out["sentiment_min_6h"].append(float(chunk.min()) if len(chunk) else 0.0)
                out["sentiment_max_6h"].append(float(chunk.max()) if len(chunk) else 0.0)
    frame = pd.DataFrame({"ts": hours, **out})
    frame["feature_set_id"] = SENTIMENT_FEATURE_SET_ID
    return frame
