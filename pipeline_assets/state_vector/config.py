"""StateVectorConfig: the builder's settings, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
FILL_METHODS = ("forward", "zero", "raise")
# Version strings with a layout this code builds (see layout.py).
SUPPORTED_VERSIONS = ("v1",)


@dataclass(frozen=True)
class StateVectorConfig:
    version: str = "v1"
    symbols: tuple[str, ...] | list[str] = field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    window_hours: int = 168
    use_cache: bool = True
    cache_size: int = 1000
    normalize_ohlcv: bool = True
    normalize_indicators: bool = True
    fill_method: str = "forward"
    log_build_time: bool = True
    warn_slow_build: bool = True
    slow_threshold_ms: float = 30.0
    # Symbol whose returns the cross-asset block correlates with; None: BTCUSDT when configured,
    # otherwise the first symbol.
    reference_symbol: str | None = None

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"StateVectorConfig.{name}: {why}, got {getattr(self, name)!r}")

        if self.version not in SUPPORTED_VERSIONS:
            raise bad("version", f"must be one of {SUPPORTED_VERSIONS}")
        if isinstance(self.symbols, str) or not all(isinstance(s, str) and s for s in self.symbols):
            raise bad("symbols", "must be a list of non-empty symbol strings")
        symbols = tuple(self.symbols)
        if not symbols:
            raise bad("symbols", "must not be empty")
        if len(set(symbols)) != len(symbols):
            raise bad("symbols", "must not repeat a symbol")
        object.__setattr__(self, "symbols", symbols)
        for name in ("window_hours", "cache_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad(name, "must be an integer")
        if not 24 <= self.window_hours <= 24 * 366:
            raise bad("window_hours", "must be between 24 and 8784")
        if self.cache_size < 1:
            raise bad("cache_size", "must be >= 1 (set use_cache=False to disable caching)")
        for name in ("use_cache", "normalize_ohlcv", "normalize_indicators", "log_build_time", "warn_slow_build"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be True or False")
        if self.fill_method not in FILL_METHODS:
            raise bad("fill_method", f"must be one of {FILL_METHODS}")
        if (
            isinstance(self.slow_threshold_ms, bool)
            or not isinstance(self.slow_threshold_ms, (int, float))
            or not (self.slow_threshold_ms > 0)
        ):
            raise bad("slow_threshold_ms", "must be a number > 0")
        if self.reference_symbol is not None and self.reference_symbol not in symbols:
            raise bad("reference_symbol", f"must be one of the configured symbols {list(symbols)}")

    @property
    def reference(self) -> str:
        if self.reference_symbol is not None:
            return self.reference_symbol
        return "BTCUSDT" if "BTCUSDT" in self.symbols else self.symbols[0]
