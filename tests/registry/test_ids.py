"""Operation ids are RFC 9562 UUIDv7 strings: valid, unique, ordered by time."""

from __future__ import annotations

import os
import time
import uuid

from actors.registry._ids import new_operation_id


def test_operation_ids_are_version_7_uuids_with_the_rfc_variant() -> None:
    for _ in range(1000):
        text = new_operation_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # the canonical 36-character form
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_operation_ids_carry_the_creation_time_and_sort_by_it() -> None:
    before = time.time_ns() // 1_000_000
    first = new_operation_id()
    millis = int(uuid.UUID(first).hex[:12], 16)
    after = time.time_ns() // 1_000_000
    assert before <= millis <= after
    later = [new_operation_id() for _ in range(2000)]
    # Ids from a later millisecond sort after every id of an earlier one.
    stamps = [uuid.UUID(i).hex[:12] for i in later]
    assert stamps == sorted(stamps)
    assert all(first[:13] <= i[:13] for i in later)


def test_operation_ids_do_not_repeat() -> None:
    ids = [new_operation_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    # The random bits come from a generator in process memory, which a fork
    # copies: the child must reseed, or it would draw the parent's next bits.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next ids' random parts, then leave at once
        try:
            os.write(write, ",".join(new_operation_id()[15:] for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write)
    parents = {new_operation_id()[15:] for _ in range(8)}
    with os.fdopen(read, "rb") as pipe:
        childs = set(pipe.read().decode().split(","))
    assert os.waitpid(pid, 0)[1] == 0
    assert len(childs) == 8
    assert not parents & childs
