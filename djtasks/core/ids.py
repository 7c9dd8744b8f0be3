"""Task ids: random UUIDs (version 4) in their usual text form, as str(uuid.uuid4()) gives them."""

from __future__ import annotations

import os


def new_id() -> str:
    """Return str(uuid.uuid4()) without building a UUID object (a third of its cost).

    The 16 bytes come from os.urandom, as uuid4's do, at every call: nothing is buffered, so a
    forked child never repeats its parent's ids.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
