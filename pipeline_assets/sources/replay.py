"""Replay an exchange's REST API from recorded responses: offline runs of the exchange source
through ccxt's own request and parsing code (``PIPELINE_EXCHANGE_REPLAY=<spec.json>``).

The spec file (JSON) may hold:
- ``"recorded"``: path of a ccxt recorded-responses file (as in ../shared/fixtures/exchange/): its
  fetchOHLCV cases with timeframe 1h become candles served by the klines endpoints, its
  fetchOrderBook cases the depth endpoint's answers;
- ``"responses"``: {url path: body or {"file": path}} answered as is (e.g. the market list);
- ``"klines"``: {url path: {exchange symbol id: [candle rows in the exchange's wire format]}}.
Relative paths are relative to the spec file. A request nothing in the spec answers gets HTTP
404 with a JSON error, which ccxt raises as an exchange error: a replayed run never reaches the
network, and a gap in the recording is an error naming the path, not invented data.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import requests
from requests.structures import CaseInsensitiveDict

KLINES_PATHS = {"spot": "/api/v3/klines", "swap": "/fapi/v1/klines"}
DEPTH_PATHS = {"spot": "/api/v3/depth", "swap": "/fapi/v1/depth"}


def _market_type(ccxt_symbol: str) -> str:
    return "swap" if ":" in ccxt_symbol else "spot"


class ReplaySession:
    """The part of requests.Session that ccxt's Exchange.fetch uses."""

    def __init__(self, spec: dict, base: Path):
        self.cookies = requests.cookies.RequestsCookieJar()
        self.headers = CaseInsensitiveDict()
        self.requests: list[tuple[str, dict]] = []
        self.responses: dict[str, object] = {}
        self.klines: dict[str, dict[str, list]] = {}
        self.depth: dict[str, dict[str, object]] = {}
        for path, body in (spec.get("responses") or {}).items():
            if isinstance(body, dict) and set(body) == {"file"}:
                body = json.loads((base / body["file"]).read_text())
            self.responses[path] = body
        for path, by_symbol in (spec.get("klines") or {}).items():
            for symbol, rows in by_symbol.items():
                self.klines.setdefault(path, {}).setdefault(symbol, []).extend(rows)
        if spec.get("recorded"):
            self._add_recorded(json.loads((base / spec["recorded"]).read_text()))

    def _add_recorded(self, recorded: dict) -> None:
        methods = recorded.get("methods", {})
        for case in methods.get("fetchOHLCV", []):
            symbol, timeframe = case["input"][0], case["input"][1]
            if timeframe != "1h" or not isinstance(case.get("httpResponse"), list):
                continue
            path = KLINES_PATHS[_market_type(symbol)]
            self.klines.setdefault(path, {}).setdefault(symbol.split(":")[0].replace("/", ""), []).extend(
                case["httpResponse"]
            )
        for case in methods.get("fetchOrderBook", []):
            symbol = case["input"][0]
            path = DEPTH_PATHS[_market_type(symbol)]
            self.depth.setdefault(path, {})[symbol.split(":")[0].replace("/", "")] = case["httpResponse"]

    def close(self) -> None:
        pass

    def request(self, method, url, data=None, headers=None, timeout=None, proxies=None, verify=None, files=None, **kw):
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query))
        self.requests.append((parts.path, params))
        if method != "GET":
            return self._response(url, 405, {"code": -1, "msg": f"replay serves GET only, not {method}"})
        if parts.path in self.responses:
            return self._response(url, 200, self.responses[parts.path])
        if parts.path in self.klines:
            rows = self.klines[parts.path].get(params.get("symbol", ""))
            if rows is None:
                return self._response(url, 400, {"code": -1121, "msg": "Invalid symbol."})
            start = int(params.get("startTime", 0))
            end = int(params.get("endTime", 2**62))
            limit = int(params.get("limit", 500))
            chosen = sorted((r for r in rows if start <= int(r[0]) <= end), key=lambda r: int(r[0]))[:limit]
            return self._response(url, 200, chosen)
        if parts.path in self.depth and params.get("symbol") in self.depth[parts.path]:
            return self._response(url, 200, self.depth[parts.path][params["symbol"]])
        return self._response(url, 404, {"code": -1, "msg": f"the replay has no response for {parts.path}"})

    @staticmethod
    def _response(url: str, status: int, body: object) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response.reason = HTTPStatus(status).phrase
        response.url = url
        response._content = (body if isinstance(body, str) else json.dumps(body)).encode()
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json;charset=UTF-8"})
        response.encoding = "utf-8"
        return response


def load_replay(path: str | Path) -> ReplaySession:
    spec_path = Path(path)
    if not spec_path.is_file():
        raise FileNotFoundError(f"PIPELINE_EXCHANGE_REPLAY={str(path)!r} is not a file")
    return ReplaySession(json.loads(spec_path.read_text()), spec_path.resolve().parent)
