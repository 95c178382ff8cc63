"""Dagster resources: the warehouse connection and the market data sources."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import psycopg
from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from pipeline_assets.sources.base import HeadlineSource, OhlcvSource
from pipeline_assets.sources.csv_dir import CsvDirectorySource
from pipeline_assets.sources.synthetic import SyntheticMarket
from pipeline_assets.store import locks
from pipeline_assets.store.db import connect, normalise_database_url
from pipeline_assets.store.migrate import MigrationReport, migrate

_migrated: dict[str, MigrationReport] = {}


class WarehouseResource(ConfigurableResource):
    """PostgreSQL warehouse. Migrations run once per process on first use (idempotent, locked)."""

    database_url: str

    def setup_for_execution(self, context: InitResourceContext) -> None:
        url = normalise_database_url(self.database_url)
        if url not in _migrated:
            _migrated[url] = migrate(url)

    @property
    def migration_report(self) -> MigrationReport:
        return _migrated[normalise_database_url(self.database_url)]

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Serialise a read-modify-write across runs (e.g. the online model's state)."""
        with locks.exclusive(self.database_url, name):
            yield

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """One transaction: a partition is written entirely or not at all."""
        with connect(self.database_url) as conn, conn.transaction():
            yield conn


class MarketDataResource(ConfigurableResource):
    """Where bars, books and headlines come from: the deterministic synthetic market, a CSV
    directory, or an exchange's public REST API through ccxt (``exchange_id``, ``market_type``
    spot or swap = USDT-margined perpetual; no credentials)."""

    ohlcv_source: Literal["synthetic", "csv", "exchange"] = "synthetic"
    csv_directory: str | None = None
    synthetic_seed: int = 7
    exchange_id: str = "binance"
    market_type: Literal["spot", "swap"] = "spot"
    headline_path: str | None = None  # JSONL/CSV file or directory; None: the synthetic headlines

    _market: SyntheticMarket = PrivateAttr()

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._market = SyntheticMarket(seed=self.synthetic_seed)
        if self.ohlcv_source == "csv" and not self.csv_directory:
            raise ValueError("MarketDataResource: ohlcv_source='csv' needs csv_directory")

    def ohlcv(self) -> OhlcvSource:
        if self.ohlcv_source == "csv":
            return CsvDirectorySource(Path(self.csv_directory))
        if self.ohlcv_source == "exchange":
            return self.exchange()
        return self._market

    def exchange(self, market_type: str | None = None):
        """The ccxt exchange source (one per call: it holds the exchange's rate-limit state);
        ``market_type='swap'`` for the perpetuals the derivatives feeds come from."""
        from pipeline_assets.sources.exchange import ExchangeSource

        return ExchangeSource(exchange_id=self.exchange_id, market_type=market_type or self.market_type)

    def headlines(self) -> HeadlineSource:
        if self.headline_path:
            from pipeline_assets.sources.headlines_file import HeadlineFileSource

            return HeadlineFileSource(self.headline_path)
        return self._market
