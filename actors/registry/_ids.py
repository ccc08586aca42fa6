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
import random
import time

# The 74 random bits come from a private generator seeded from os.urandom, not
# from os.urandom on every id: that is a system call, which also hands the GIL
# to whichever thread wants it (the journal's writer), and it cost more than
# the rest of an accept. Ids need to be unique, not secret: nothing is
# authorised by knowing one. Private, so that `random.seed()` in an
# application cannot make two processes draw the same bits; reseeded in a
# forked child, which would otherwise repeat its parent's ids.
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)
_bits = _random.getrandbits

_MILLIS = (1 << 48) - 1
_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_B = (1 << 62) - 1


def new_operation_id() -> str:
    """A new UUIDv7, as the usual 36-character string."""
    # 48 bits of Unix milliseconds, version 7, 12 random bits, variant 0b10, 62 random bits.
    rand = _bits(74)
    value = (
        (time.time_ns() // 1_000_000 & _MILLIS) << 80
        | _VERSION
        | (rand >> 62) << 64
        | _VARIANT
        | (rand & _RAND_B)
    )
    h = value.to_bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
