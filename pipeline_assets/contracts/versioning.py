"""Content ids: every parameter that changes results is part of the id."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_id(prefix: str, payload: dict[str, Any], length: int = 12) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return f"{prefix}-{hashlib.sha256(canonical.encode()).hexdigest()[:length]}"
