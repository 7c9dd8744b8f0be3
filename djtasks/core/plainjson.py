"""json.dumps(value) for values plain() copied, without the cost json.dumps pays at every call.

json.dumps() builds its C encoder anew at each call, with a dict to detect circular references:
1.5 µs for a short argument list, of which encoding is 0.3. A plain() copy is a tree of plain
types at most MAX_DEPTH deep, so there is no cycle to detect, and one encoder serves every call.
"""

from __future__ import annotations

import json
import json.encoder
from typing import Any

_MAKE = getattr(json.encoder, "c_make_encoder", None)  # None without json's C accelerator
_DEFAULT = json.JSONEncoder()
# The arguments JSONEncoder.iterencode passes with json.dumps' defaults, but no circular-reference markers.
_ENCODE = (
    None
    if _MAKE is None
    else _MAKE(None, _DEFAULT.default, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True)
)


def dumps(value: Any) -> str:
    """Return json.dumps(value) for a value plain() returned (an unchecked value might recurse forever)."""
    if _ENCODE is None:
        return json.dumps(value)
    return "".join(_ENCODE(value, 0))
