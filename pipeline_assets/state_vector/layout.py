"""The 768 columns of a state vector, in order (layout v1).

Rule: ``[global block][one block per configured symbol, in config order][tail padding]``.

- Global block (GLOBAL_COLUMNS, 11 columns): time encodings of the bar's open hour (hour of day and
  day of week as sin/cos), cross-sectional statistics of the symbols' returns, and the portfolio
  totals (present flag, cash share, gross and net exposure).
- Symbol block: ``(768 - 11) // n_symbols`` columns for every symbol (189 for four symbols), named
  ``<SYMBOL>.<feature>``: SYMBOL_FEATURES (40 columns: raw/normalised OHLCV, the OHLCV family's
  indicators, the multi-timeframe family, cross-asset values, order-book bands, the position
  weight and a filled flag), then ``<SYMBOL>.pad_NNN`` zeros up to the block width.
- Tail padding ``pad_NNN`` (zeros) fills the remainder up to 768.
At most (768 - 11) // 40 = 18 symbols fit. The layout id hashes the column names, the version,
the normalisation settings, the window and the indicator parameters, so a vector is only ever
compared with vectors of the same layout.

Normalisation (applied per window, from the window's own rows only, after the raw row is built):
- ``ohlcv.open/high/low/close``: log(price / the symbol's close at the window's last row);
  ``ohlcv.volume``: log1p(volume) z-scored over the window (``normalize_ohlcv``).
- ``ind.*``, ``mtf.*`` and the continuous cross-asset columns: z-score over the window, clipped to
  [-10, 10]; a column constant over the window becomes 0 (``normalize_indicators``).
- Ranks, order-book, portfolio, flags and time encodings are bounded by construction and never
  rescaled: spread and microprice in basis points, depths as log1p(quote notional), imbalances in
  [-1, 1], weights as fractions of total value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline_assets.contracts.versioning import content_id
from pipeline_assets.features.mtf import MTF_COLUMNS, MTF_PARAMS, MTF_VERSION
from pipeline_assets.features.ohlcv_features import FEATURE_COLUMNS, FEATURE_PARAMS, FEATURE_SET_VERSION
from pipeline_assets.state_vector.config import StateVectorConfig

WIDTH = 768
GLOBAL_COLUMNS: tuple[str, ...] = (
    "time.hour_sin",
    "time.hour_cos",
    "time.dow_sin",
    "time.dow_cos",
    "xasset.dispersion_1h",
    "xasset.dispersion_24h",
    "xasset.mean_return_1h",
    "portfolio.present",
    "portfolio.cash_share",
    "portfolio.gross_exposure",
    "portfolio.net_exposure",
)
OHLCV_FIELDS = ("ohlcv.open", "ohlcv.high", "ohlcv.low", "ohlcv.close", "ohlcv.volume")
IND_FIELDS = tuple(f"ind.{c}" for c in FEATURE_COLUMNS)
MTF_FIELDS = tuple(f"mtf.{c}" for c in MTF_COLUMNS)
XASSET_FIELDS = (
    "xasset.corr_ref_24h",
    "xasset.beta_ref_24h",
    "xasset.rel_strength_24h",
    "xasset.rank_return_1h",
    "xasset.rank_return_24h",
)
BOOK_FIELDS = (
    "book.present",
    "book.spread_bps",
    "book.bid_depth_1_3",
    "book.ask_depth_1_3",
    "book.bid_depth_4_10",
    "book.ask_depth_4_10",
    "book.imbalance_1_3",
    "book.imbalance_4_10",
    "book.microprice_bps",
)
SYMBOL_FEATURES: tuple[str, ...] = (
    OHLCV_FIELDS + IND_FIELDS + MTF_FIELDS + XASSET_FIELDS + BOOK_FIELDS + ("portfolio.weight", "data.filled")
)
# Offsets inside a symbol block
OFF_OHLCV = 0
OFF_IND = OFF_OHLCV + len(OHLCV_FIELDS)
OFF_MTF = OFF_IND + len(IND_FIELDS)
OFF_XASSET = OFF_MTF + len(MTF_FIELDS)
OFF_BOOK = OFF_XASSET + len(XASSET_FIELDS)
OFF_WEIGHT = OFF_BOOK + len(BOOK_FIELDS)
OFF_FILLED = OFF_WEIGHT + 1
MAX_SYMBOLS = (WIDTH - len(GLOBAL_COLUMNS)) // len(SYMBOL_FEATURES)

# Normalisation kinds per column
NORM_NONE, NORM_ZSCORE, NORM_LOG_PRICE, NORM_LOG_VOLUME = 0, 1, 2, 3


@dataclass(frozen=True)
class Layout:
    """Output columns (768) and the compact *raw row* the builder computes and the asset stores:
    the global block then each symbol's SYMBOL_FEATURES, without padding (11 + 40 n columns)."""

    version: str
    symbols: tuple[str, ...]
    block_width: int
    columns: tuple[str, ...]
    raw_columns: tuple[str, ...]
    raw_kind: np.ndarray  # int64 per raw column: normalisation kind after the config's switches
    raw_price_ref: np.ndarray  # int64 per raw column: raw index of the close its log price is taken against
    raw_to_out: np.ndarray  # int64 per raw column: its output column
    layout_id: str

    def symbol_offset(self, index: int) -> int:
        """First output column of symbol ``index``'s block."""
        return len(GLOBAL_COLUMNS) + index * self.block_width

    @staticmethod
    def raw_symbol_offset(index: int) -> int:
        return len(GLOBAL_COLUMNS) + index * len(SYMBOL_FEATURES)

    @property
    def raw_width(self) -> int:
        return len(self.raw_columns)

    @property
    def runs(self) -> np.ndarray:
        """(n, 4) int64 [raw start, raw stop, output start, kind]: maximal raw column ranges of one
        normalisation kind (and one reference close) that are contiguous in the output too."""
        out = []
        start = 0
        kind, ref, dst = self.raw_kind, self.raw_price_ref, self.raw_to_out
        for j in range(1, self.raw_width + 1):
            if (
                j == self.raw_width
                or kind[j] != kind[start]
                or dst[j] != dst[j - 1] + 1
                or (kind[j] == NORM_LOG_PRICE and ref[j] != ref[start])
            ):
                out.append((start, j, int(dst[start]), int(kind[start])))
                start = j
        return np.asarray(out, dtype=np.int64)


def _kind(name: str) -> int:
    if name in OHLCV_FIELDS[:4]:
        return NORM_LOG_PRICE
    if name == "ohlcv.volume":
        return NORM_LOG_VOLUME
    if name.startswith(("ind.", "mtf.")) or name in XASSET_FIELDS[:3]:
        return NORM_ZSCORE
    return NORM_NONE


def build_layout(config: StateVectorConfig) -> Layout:
    symbols = tuple(config.symbols)
    if len(symbols) > MAX_SYMBOLS:
        raise ValueError(
            f"StateVectorConfig.symbols: {len(symbols)} symbols do not fit in {WIDTH} columns "
            f"({len(SYMBOL_FEATURES)} per symbol plus {len(GLOBAL_COLUMNS)} global); at most {MAX_SYMBOLS}"
        )
    block = (WIDTH - len(GLOBAL_COLUMNS)) // len(symbols)
    columns = list(GLOBAL_COLUMNS)
    raw = list(GLOBAL_COLUMNS)
    kinds = [NORM_ZSCORE if c.startswith("xasset.") else NORM_NONE for c in GLOBAL_COLUMNS]
    refs = [-1] * len(GLOBAL_COLUMNS)
    to_out = list(range(len(GLOBAL_COLUMNS)))
    for index, symbol in enumerate(symbols):
        out_base = len(columns)
        close_at = Layout.raw_symbol_offset(index) + OFF_OHLCV + 3
        for f, name in enumerate(SYMBOL_FEATURES):
            columns.append(f"{symbol}.{name}")
            raw.append(f"{symbol}.{name}")
            kinds.append(_kind(name))
            refs.append(close_at)
            to_out.append(out_base + f)
        columns.extend(f"{symbol}.pad_{k:03d}" for k in range(block - len(SYMBOL_FEATURES)))
    columns.extend(f"pad_{k:03d}" for k in range(WIDTH - len(columns)))
    norm = np.asarray(kinds, dtype=np.int64)
    if not config.normalize_ohlcv:
        norm[(norm == NORM_LOG_PRICE) | (norm == NORM_LOG_VOLUME)] = NORM_NONE
    if not config.normalize_indicators:
        norm[norm == NORM_ZSCORE] = NORM_NONE
    layout_id = content_id(
        f"state-vector-{config.version}",
        {
            "columns": columns,
            "version": config.version,
            "window_hours": config.window_hours,
            "normalize_ohlcv": config.normalize_ohlcv,
            "normalize_indicators": config.normalize_indicators,
            "fill_method": config.fill_method,
            "reference": config.reference,
            "families": {
                "ohlcv": [FEATURE_SET_VERSION, FEATURE_PARAMS],
                "mtf": [MTF_VERSION, MTF_PARAMS],
            },
        },
    )
    return Layout(
        version=config.version,
        symbols=symbols,
        block_width=block,
        columns=tuple(columns),
        raw_columns=tuple(raw),
        raw_kind=norm,
        raw_price_ref=np.asarray(refs, dtype=np.int64),
        raw_to_out=np.asarray(to_out, dtype=np.int64),
        layout_id=layout_id,
    )
