"""Replay an exchange's websocket from a recorded (or hand-built) session: offline runs of the
liquidation collector through ccxt pro's own websocket client and message handler
(``PIPELINE_EXCHANGE_WS_REPLAY=<session.json>``, the websocket counterpart of replay.py).

The replay stands in for the aiohttp session that ccxt's ``Client`` dials (``ws_connect``), so
every frame goes through ccxt's ``Client.handle_message`` -> the exchange's ``handle_message``
-> its stream handler and parser, exactly as a live frame would. The session file (JSON):

    {"handbuilt": true|false, "_comment": "...", "ended_at": ISO time,
     "connections": [{"opened_at": ISO time, "frames": [frame, ...]}, ...]}

Frames, delivered in order, each advancing the replay clock to its ``at`` (the time it was
received): ``{"at", "subscribed": true}`` the server's acknowledgement of the last SUBSCRIBE the
client sent (``{"result": null, "id": <that id>}``); ``{"at", "data": {...}}`` a JSON message;
``{"at", "text": "..."}`` a raw text frame as is; ``{"at", "disconnect": "why"}`` the server drops
the connection (close code 1006). ccxt then reconnects, which dials the next connection of the
file; when no connection is left the dial is refused. After the last frame of the last
connection the clock moves to ``ended_at`` and ``exhausted`` is set.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pandas as pd
from aiohttp import WSMessage, WSMsgType


class ReplayClock:
    def __init__(self, start: pd.Timestamp):
        self.time = pd.Timestamp(start)

    def __call__(self) -> pd.Timestamp:
        return self.time


class ReplayWebSocket:
    """The part of aiohttp's ClientWebSocketResponse that ccxt's ws Client uses."""

    _conn = None  # ccxt reads connection._conn to drain aiohttp's buffer; there is none here

    def __init__(self, replay: WebSocketReplay, index: int, frames: list[dict]):
        self.replay = replay
        self.index = index
        self.frames = list(frames)
        self.position = 0
        self._closed = False
        self._subscribe_ids: list[object] = []
        self._subscribed = asyncio.Event()
        self._closing = asyncio.Event()

    @property
    def closed(self) -> bool:
        return self._closed

    async def send_str(self, text: str) -> None:
        message = json.loads(text)
        self.replay.sent.append((self.index, message))
        if isinstance(message, dict) and message.get("method") == "SUBSCRIBE":
            self._subscribe_ids.append(message.get("id"))
            self._subscribed.set()

    async def receive(self) -> WSMessage:
        if self._closed:
            return WSMessage(WSMsgType.CLOSED, None, None)
        if self.position >= len(self.frames):
            self.replay._connection_exhausted(self.index)
            await self._closing.wait()  # a quiet stream: nothing more until the client closes
            return WSMessage(WSMsgType.CLOSED, None, None)
        frame = self.frames[self.position]
        self.position += 1
        if frame.get("subscribed"):
            await self._subscribed.wait()  # the acknowledgement answers a request the client sent
            self.replay.clock.time = pd.Timestamp(frame["at"])
            return self._text(json.dumps({"result": None, "id": self._subscribe_ids[-1]}))
        self.replay.clock.time = pd.Timestamp(frame["at"])
        if "disconnect" in frame:
            self._closed = True
            return WSMessage(WSMsgType.CLOSE, 1006, str(frame["disconnect"]))
        if "text" in frame:
            return self._text(frame["text"])
        return self._text(json.dumps(frame["data"]))

    @staticmethod
    def _text(body: str) -> WSMessage:
        return WSMessage(WSMsgType.TEXT, body, None)

    async def ping(self, *args) -> None:
        pass

    async def pong(self, *args) -> None:
        pass

    async def close(self, *args, **kwargs) -> bool:
        self._closed = True
        self._closing.set()
        return True


class _Dial:
    def __init__(self, replay: WebSocketReplay, url: str):
        self.replay = replay
        self.url = url

    async def __aenter__(self) -> ReplayWebSocket:
        return self.replay._open(self.url)


class WebSocketReplay:
    """Stands in for the aiohttp ClientSession a ccxt pro exchange dials websockets with."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.handbuilt = bool(spec.get("handbuilt"))
        self.connections = list(spec.get("connections") or [])
        if not self.connections:
            raise ValueError("websocket replay: the session has no connections")
        self.ended_at = pd.Timestamp(spec["ended_at"])
        self.clock = ReplayClock(pd.Timestamp(self.connections[0]["opened_at"]))
        self.sent: list[tuple[int, object]] = []
        self.urls: list[str] = []
        self.exhausted = asyncio.Event()

    def ws_connect(self, url: str, **kwargs) -> _Dial:
        return _Dial(self, url)

    def _open(self, url: str) -> ReplayWebSocket:
        index = len(self.urls)
        if index >= len(self.connections):
            self.exhausted.set()
            raise ConnectionRefusedError(f"websocket replay: no recorded connection left for {url}")
        self.urls.append(url)
        connection = self.connections[index]
        self.clock.time = max(self.clock.time, pd.Timestamp(connection["opened_at"]))
        return ReplayWebSocket(self, index, connection.get("frames") or [])

    def _connection_exhausted(self, index: int) -> None:
        if index == len(self.connections) - 1:
            self.clock.time = max(self.clock.time, self.ended_at)
            self.exhausted.set()

    async def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False


def load_ws_replay(path: str | Path) -> WebSocketReplay:
    spec_path = Path(path)
    if not spec_path.is_file():
        raise FileNotFoundError(f"PIPELINE_EXCHANGE_WS_REPLAY={str(path)!r} is not a file")
    return WebSocketReplay(json.loads(spec_path.read_text()))
