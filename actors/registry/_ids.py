"""Operation ids: UUIDv7 strings (RFC 9562), time-ordered.

A UUIDv7 begins with the Unix time in milliseconds, then 74 random bits. New
ids therefore sort after older ones (to the millisecond), so the operations
table's primary key grows at its right-hand end instead of at random places:
an insert touches the same few index pages as the previous one, which costs
the database less (fewer pages to write, far fewer full-page images in
PostgreSQL's WAL after a checkpoint) and keeps that advantage as the table
grows. Operators also get ids that sort by creation time.
"""

from __future__ import annotations

import os
import time

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_A = 0xFFF  # 12 random bits after the version
_RAND_B = (1 << 62) - 1  # 62 random bits after the variant


def new_operation_id() -> str:
    """A new UUIDv7, as the usual 36-character string."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits: 12 + 62 used
    value = (
        (millis & 0xFFFF_FFFF_FFFF) << 80
        | _VERSION
        | ((rand >> 62) & _RAND_A) << 64
        | _VARIANT
        | (rand & _RAND_B)
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
