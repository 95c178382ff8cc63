"""Liquidations collected forward from an exchange's websocket (ccxt pro), with the coverage of
the collection: exchanges publish no REST liquidation history, so an hour's liquidations are
known only if the stream was watched for the whole hour.

``LiquidationCollector`` subscribes to the forced-order stream of its symbols (binance:
``<symbol>@forceOrder`` on the USD-M futures stream, through ccxt pro's
``watch_liquidations_for_symbols``) and runs for a duration or until stopped. Every frame goes
through ccxt's own client, message handler and parser (``handle_liquidation`` /
``parse_ws_liquidation``); the collector observes them through a thin subclass of the ccxt
exchange, so no event is lost when several arrive before the watch future is awaited again.

Per event: ``ts`` = the venue's trade time (``T``), ``available_at`` = the time the frame was
received (never before ``ts``: a receiving clock behind the venue's is clamped to ``ts`` and
counted in the report), ``event_id`` = a digest of the venue's order payload (the stream has no
id; the same event re-delivered after a reconnect has the same payload and is stored once, the
first receipt wins). ``size`` = filled quantity x contract size, ``price`` = average fill price.
A frame ccxt cannot read, or an event without time, side, size or price, goes to quarantine with
the reason; an event breaking the contract (e.g. size 0) too, through the contract validation.

Coverage: an interval starts when the exchange confirms the subscription and ends at the last
evidence that the connection was alive when it drops (the last frame received, or ccxt's last
pong); on a clean stop it ends at the stop, less ccxt's keep-alive window if nothing was heard
within it (ccxt only notices a dead connection after keepAlive x maxPingPongMisses). A
reconnect gap is never covered.

Binance pushes at most one liquidation snapshot per symbol per 1000 ms on this stream, so the
stored sizes are what the venue publishes, a lower bound of all forced orders in busy seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import ccxt
import ccxt.async_support
import ccxt.pro
import pandas as pd

from pipeline_assets.contracts.derivatives import LIQUIDATIONS_CONTRACT, validate_feed
from pipeline_assets.sources.exchange import make_exchange, to_ccxt_symbol

log = logging.getLogger(__name__)
EVENT_COLUMNS = [c.name for c in LIQUIDATIONS_CONTRACT.columns]
COVERAGE_COLUMNS = ["symbol", "venue", "market_type", "watched_from", "watched_until", "ended_by", "source"]
WS_REPLAY_ENV = "PIPELINE_EXCHANGE_WS_REPLAY"


class LiquidationStreamError(RuntimeError):
    """The stream refused the subscription or failed in a way a reconnect cannot fix."""


@dataclass
class CollectedBatch:
    """What one flush hands to the sink: contract-valid events, refused rows with a ``reason``
    (event columns where known, plus ``payload``: the frame as received), coverage intervals."""

    events: pd.DataFrame
    rejected: pd.DataFrame
    coverage: pd.DataFrame


@dataclass
class CollectorReport:
    events: int = 0
    duplicates: int = 0
    rejected: int = 0
    clock_skew_events: int = 0
    connections: int = 0
    disconnects: list[str] = field(default_factory=list)
    intervals: list[tuple[str, str]] = field(default_factory=list)


def _ms_time(ms) -> pd.Timestamp:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC")


def event_id(order: dict) -> str:
    """Digest of the venue's order payload: stable across re-deliveries of the same event."""
    digest = hashlib.sha256(json.dumps(order, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"fo-{digest[:32]}"


class _Observed:
    """Mixed in before a ccxt pro exchange class: calls ccxt's own handlers, and tells the
    collector what happened (frames, confirmations, parsed liquidations, drops)."""

    observer: LiquidationCollector
    _current_frame: dict | None = None

    def handle_message(self, client, message):
        self.observer._heard()
        if not isinstance(message, dict | list):
            # ccxt hands on a text frame that is not a JSON object as a string; binance would ignore it
            self.observer._malformed(message, f"frame is not a JSON object: {str(message)[:200]!r}")
            return None
        try:
            return super().handle_message(client, message)
        except Exception as exc:  # noqa: BLE001 - one bad frame must not stop ccxt's receive loop
            self.observer._malformed(message, f"frame ccxt cannot read ({type(exc).__name__}: {exc})")
            return None

    def handle_subscription_status(self, client, message):
        result = super().handle_subscription_status(client, message)
        if isinstance(message, dict) and "result" in message and message.get("result") is None:
            self.observer._confirmed(client.url)
        return result

    def handle_ws_error(self, client, message):
        # ccxt rejects the subscription hash, which no liquidation watch awaits: tell the collector
        self.observer._refused(message)
        return super().handle_ws_error(client, message)

    def handle_liquidation(self, client, message):
        self._current_frame = message
        try:
            return super().handle_liquidation(client, message)
        finally:
            self._current_frame = None

    def parse_ws_liquidation(self, liquidation, market=None):
        parsed = super().parse_ws_liquidation(liquidation, market)
        if self._current_frame is not None:
            self.observer._liquidation(parsed, self._current_frame)
        return parsed

    def on_close(self, client, error):
        self.observer._lost(client, f"connection closed (code {error})")
        return super().on_close(client, error)

    def on_error(self, client, error):
        self.observer._lost(client, f"{type(error).__name__}: {error}")
        return super().on_error(client, error)


def make_stream_exchange(exchange_id: str = "binance"):
    """A ccxt pro exchange of the USDT-margined perpetuals with the collector's observer mixed
    in; markets are loaded through the REST exchange of sources/exchange.py (which honours
    PIPELINE_EXCHANGE_REPLAY); PIPELINE_EXCHANGE_WS_REPLAY replays the websocket offline."""
    base = getattr(ccxt.pro, exchange_id, None)
    if not (isinstance(base, type) and issubclass(base, ccxt.async_support.Exchange)):
        raise ValueError(f"exchange_id={exchange_id!r} is not a ccxt pro exchange")
    if not base().has.get("watchLiquidationsForSymbols"):
        raise ValueError(f"{exchange_id}: ccxt pro has no public liquidation stream (watchLiquidationsForSymbols)")
    observed = type(f"Observed{base.__name__}", (_Observed, base), {})
    exchange = observed({"enableRateLimit": True, "options": {"defaultType": "swap"}})
    rest = make_exchange(exchange_id, "swap")
    rest.load_markets()
    exchange.set_markets(rest.markets, rest.currencies)
    replay_path = os.environ.get(WS_REPLAY_ENV)
    if replay_path:
        from pipeline_assets.sources.ws_replay import load_ws_replay

        exchange.session = load_ws_replay(replay_path)
    return exchange


class LiquidationCollector:
    """Collects the liquidations of ``symbols`` (pipeline symbols, e.g. BTCUSDT) from ``exchange``
    (see make_stream_exchange) into ``sink`` (called with a CollectedBatch every
    ``flush_seconds`` and at the end)."""

    def __init__(
        self,
        exchange,
        symbols: Sequence[str],
        sink: Callable[[CollectedBatch], None],
        exchange_id: str = "binance",
        now: Callable[[], datetime] | None = None,
        flush_seconds: float = 60.0,
        reconnect_delay_s: float = 1.0,
    ):
        if not symbols:
            raise ValueError("LiquidationCollector needs at least one symbol")
        self.exchange = exchange
        exchange.observer = self
        self.sink = sink
        self.venue = f"{exchange_id}:swap"
        self.source = f"exchange:{exchange_id}:swap:websocket"
        self.symbols = [s.strip().upper() for s in symbols]
        self.ccxt_symbols = {}
        for symbol in self.symbols:
            unified = to_ccxt_symbol(symbol, "swap")
            if unified is None or unified not in (exchange.markets or {}):
                raise ValueError(f"{self.venue} does not list a perpetual for {symbol} ({unified})")
            self.ccxt_symbols[unified] = symbol
        self._wall_clock = now is None
        self._now = now or (lambda: datetime.now(UTC))
        self.flush_seconds = flush_seconds
        self.reconnect_delay_s = reconnect_delay_s
        self.report = CollectorReport()
        self._seen: set[tuple[str, str]] = set()
        self._events: list[dict] = []
        self._rejected: list[dict] = []
        self._intervals: list[dict] = []
        self._confirmed_at: pd.Timestamp | None = None
        self._heard_at: pd.Timestamp | None = None
        self._client = None
        self._refusal: str | None = None
        self._wake: asyncio.Event | None = None

    # ---- observations (called from ccxt's handlers) -------------------------------------------

    def now(self) -> pd.Timestamp:
        return pd.Timestamp(self._now()).tz_convert("UTC")

    def _heard(self) -> None:
        self._heard_at = self.now()

    def _confirmed(self, url: str) -> None:
        self._client = (self.exchange.clients or {}).get(url, self._client)
        if self._confirmed_at is None:
            self._confirmed_at = self.now()
            self._heard_at = self._confirmed_at
            self.report.connections += 1
            log.info("%s liquidations: subscription confirmed at %s (%s)", self.venue, self._confirmed_at, url)

    def _refused(self, message) -> None:
        self._refusal = (
            f"at {self.now().isoformat()}: the exchange refused the subscription: {json.dumps(message, default=str)}"
        )
        if self._wake is not None:
            self._wake.set()

    def _evidence(self) -> pd.Timestamp | None:
        times = [t for t in (self._confirmed_at, self._heard_at) if t is not None]
        client = self._client
        if self._wall_clock and client is not None:
            # frames of any kind (pings included) and pongs: ccxt's own wall-clock records
            for ms in (getattr(client, "last_message_at", None), getattr(client, "lastPong", None)):
                if ms:
                    times.append(_ms_time(ms))
        return max(times) if times else None

    def _close_interval(self, until: pd.Timestamp, ended_by: str) -> None:
        if self._confirmed_at is None:
            return
        start, self._confirmed_at = self._confirmed_at, None
        if until > start:
            self._intervals.append({"watched_from": start, "watched_until": until, "ended_by": ended_by})
            self.report.intervals.append((start.isoformat(), until.isoformat()))

    def _lost(self, client, reason: str) -> None:
        if self._confirmed_at is None:
            return
        evidence = self._evidence()
        self.report.disconnects.append(f"{self.now().isoformat()}: {reason}")
        log.warning(
            "%s liquidations %s: stream lost at %s (%s); covered until %s",
            self.venue, ",".join(self.symbols), self.now(), reason, evidence,
        )  # fmt: skip
        self._close_interval(evidence, f"disconnect: {reason}")

    def _malformed(self, frame, reason: str, symbol: str | None = None, ts=None) -> None:
        received = self.now()
        self._rejected.append(
            {
                "symbol": symbol,
                "venue": self.venue,
                "ts": ts if ts is not None else pd.NaT,
                "available_at": received,
                "source": self.source,
                "reason": reason,
                "payload": json.dumps(frame, sort_keys=True, default=str) if not isinstance(frame, str) else frame,
            }
        )
        self.report.rejected += 1
        log.warning("%s liquidations: refused at %s: %s", self.venue, received, reason)

    def _liquidation(self, parsed: dict, frame: dict) -> None:
        received = self.now()
        order = frame.get("o") if isinstance(frame, dict) else None
        unified = parsed.get("symbol")
        symbol = self.ccxt_symbols.get(unified)
        ts = _ms_time(parsed["timestamp"]) if parsed.get("timestamp") is not None else None
        if symbol is None:
            self._malformed(frame, f"liquidation for {unified!r}, a symbol this collector does not watch", ts=ts)
            return
        fields = {
            "T (trade time)": ts,
            "S (side)": parsed.get("side"),
            "l (filled quantity)": parsed.get("contracts"),
            "ap (average price)": parsed.get("price"),
        }
        absent = [name for name, value in fields.items() if value is None]
        if absent or not isinstance(order, dict):
            self._malformed(frame, f"{symbol} liquidation without {', '.join(absent) or 'order'}", symbol, ts)
            return
        key = (symbol, event_id(order))
        if key in self._seen:
            self.report.duplicates += 1
            return
        self._seen.add(key)
        if received < ts:
            self.report.clock_skew_events += 1
        contract_size = parsed.get("contractSize") or 1.0
        self._events.append(
            {
                "symbol": symbol,
                "venue": self.venue,
                "ts": ts,
                "available_at": max(received, ts),
                "source": self.source,
                "event_id": key[1],
                "side": parsed["side"],
                "size": float(parsed["contracts"]) * float(contract_size),
                "price": float(parsed["price"]),
            }
        )
        self.report.events += 1

    # ---- the run ------------------------------------------------------------------------------

    def _grace(self) -> pd.Timedelta:
        client = self._client
        keep_alive = getattr(client, "keepAlive", None) or self.exchange.streaming.get("keepAlive", 0)
        misses = getattr(client, "maxPingPongMisses", None) or self.exchange.streaming.get("maxPingPongMisses", 1)
        return pd.Timedelta(milliseconds=float(keep_alive) * float(misses))

    def _batch(self, open_until: pd.Timestamp | None) -> CollectedBatch:
        intervals = list(self._intervals)
        if open_until is not None and self._confirmed_at is not None and open_until > self._confirmed_at:
            intervals.append({"watched_from": self._confirmed_at, "watched_until": open_until, "ended_by": "running"})
        coverage = pd.DataFrame(
            [
                {**i, "symbol": s, "venue": self.venue, "market_type": "swap", "source": self.source}
                for i in intervals
                for s in self.symbols
            ],
            columns=COVERAGE_COLUMNS,
        )
        events = pd.DataFrame(self._events, columns=EVENT_COLUMNS)
        rejected = pd.DataFrame(self._rejected, columns=[*EVENT_COLUMNS, "reason", "payload"])
        if len(events):
            events["ts"] = pd.to_datetime(events["ts"], utc=True)
            events["available_at"] = pd.to_datetime(events["available_at"], utc=True)
            start = events["ts"].min().floor("h")
            result = validate_feed(LIQUIDATIONS_CONTRACT, events, start, events["ts"].max() + pd.Timedelta(hours=1))
            events = result.valid
            if len(result.rejected):
                refused = result.rejected.assign(
                    payload=result.rejected[EVENT_COLUMNS]
                    .to_json(orient="records", lines=True, date_format="iso")
                    .splitlines()
                )
                self.report.rejected += len(refused)
                self.report.events -= len(refused)
                rejected = pd.concat([rejected, refused], ignore_index=True) if len(rejected) else refused
        return CollectedBatch(events.reset_index(drop=True), rejected.reset_index(drop=True), coverage)

    def flush(self, open_until: pd.Timestamp | None = None) -> CollectedBatch:
        batch = self._batch(open_until)
        self.sink(batch)
        self._events, self._rejected = [], []
        self._intervals = []
        return batch

    async def run(self, duration_s: float | None = None, stop: asyncio.Event | None = None) -> CollectorReport:
        """Collect until ``duration_s`` (measured on the collector's clock) has passed or ``stop``
        is set; reconnects after a drop. Always flushes what it has and closes the exchange."""
        stop = stop or asyncio.Event()
        deadline = self.now() + pd.Timedelta(seconds=duration_s) if duration_s is not None else None
        symbols = list(self.ccxt_symbols)
        last_flush = self.now()
        stopper = asyncio.ensure_future(stop.wait())
        self._wake = asyncio.Event()
        waker = asyncio.ensure_future(self._wake.wait())
        watch = None
        try:
            while not stop.is_set() and (deadline is None or self.now() < deadline):
                if watch is None:
                    watch = asyncio.ensure_future(self.exchange.watch_liquidations_for_symbols(symbols))
                await asyncio.wait(
                    {watch, stopper, waker}, timeout=min(1.0, self.flush_seconds), return_when=asyncio.FIRST_COMPLETED
                )
                if self._refusal is not None:
                    raise LiquidationStreamError(f"{self.venue} liquidations {','.join(self.symbols)} {self._refusal}")
                if watch.done():
                    error = watch.exception() if not watch.cancelled() else None
                    watch = None
                    if isinstance(error, ccxt.NetworkError):
                        self._lost(self._client, f"{type(error).__name__}: {error}")
                        await asyncio.sleep(self.reconnect_delay_s)
                    elif error is not None:
                        raise LiquidationStreamError(
                            f"{self.venue} liquidations {','.join(self.symbols)} at {self.now().isoformat()}: "
                            f"{type(error).__name__}: {error}"
                        ) from error
                if (self.now() - last_flush).total_seconds() >= self.flush_seconds:
                    self.flush(self._running_until())
                    last_flush = self.now()
        finally:
            stopper.cancel()
            waker.cancel()
            if watch is not None:
                watch.cancel()
            self._close_interval(self._running_until() or self.now(), "stopped")
            try:
                self.flush()
            finally:
                await self.exchange.close()
        return self.report

    def _running_until(self) -> pd.Timestamp | None:
        """The end of the running interval so far: now if the connection was heard from within
        ccxt's keep-alive window, else the last time it was heard from."""
        evidence = self._evidence()
        if evidence is None:
            return None
        return max(evidence, self.now() - self._grace())
