"""Fuzz the RPC server with hostile input over a real tcp socket, on both runtimes.

A raw DEALER socket throws random frames, garbage msgpack, wrongly shaped
envelopes, oversized bodies and REQ-style frames at a served `Service`. After
every example the server must still answer a proper `RpcClient`, and every
input that can be answered must be answered: with an error for anything the
protocol refuses.

Synchronisation is by zmq poll with deadlines, never by sleeping. After each
input the raw socket also sends a *sentinel* ping: the server answers bad
input and pings synchronously, in arrival order, so an error reply that has
not arrived before the sentinel's pong is missing (no need to wait out a
deadline to notice).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from actors import Service
from transport.client import RpcClient
from transport.protocol import DEFAULT_LIMITS, KINDS, REQUEST_KINDS, decode
from transport.server import RpcServer

MAX = DEFAULT_LIMITS.max_message_bytes
SLACK = 4096  # RpcServer sets ZMQ_MAXMSGSIZE to max_message_bytes + 4096
ZMQ_MAX = MAX + SLACK
REPLY_DEADLINE_MS = 5000
SENTINEL_ID = "fuzz-sentinel"
SENTINEL = msgpack.packb({"v": 1, "kind": "ping", "id": SENTINEL_ID})
ENVELOPE_ERRORS = {"ProtocolError", "MessageTooLarge"}
ALLOWED_FIELDS = {
    "v",
    *("kind", "id", "target", "method", "args", "timeout", "version", "key", "scope"),
}
ALLOWED_FIELDS |= {"result", "error", "info"}
REPLY_KINDS = {"call": {"reply", "error"}, "cast": {"ack", "error"}, "ping": {"pong"}}
MISSING = object()


# -- the service under fire ----------------------------------------------------------


@dataclass
class Served:
    runtime: str
    service: Service
    server: RpcServer
    client: RpcClient
    zmq: Any  # zmq or zmq.green
    context: Any

    def raw(self, monitor: bool = False) -> tuple[Any, Any]:
        """A fresh DEALER (and optionally a monitor of its disconnects)."""
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        mon = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED) if monitor else None
        sock.connect(self.server.endpoint)
        return sock, mon

    def assert_healthy(self) -> None:
        assert self.client.call("h@b1", "ping", timeout=10)["name"] == "h@b1"
        assert self.service.failed is None


@pytest.fixture
def served(make_service: Callable[..., Service], runtime_name: str) -> Iterator[Served]:
    """One service per test on `runtime_name`, served on 127.0.0.1, port 0."""
    service = make_service()
    server = service.serve("tcp://127.0.0.1:0")
    assert server.limits.max_message_bytes == MAX
    green = runtime_name == "gevent"
    if green:
        import zmq.green as zmq_mod
    else:
        zmq_mod = zmq
    context = zmq_mod.Context()
    client = RpcClient(server.endpoint, green=green, timeout=10)
    try:
        yield Served(runtime_name, service, server, client, zmq_mod, context)
    finally:
        client.close()
        context.destroy(linger=0)
    # make_service stops the service (and its server) and checks it stopped cleanly


# -- strategies -------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Frames to send; `must_error` when built to be refused whatever decode says."""

    frames: tuple[bytes, ...]
    must_error: bool = False
    label: str = ""

    def __repr__(self) -> str:  # keep hypothesis' report readable for huge frames
        shown = [f if len(f) <= 200 else f[:60] + b"...<%d bytes>" % len(f) for f in self.frames]
        return f"Case({self.label}, must_error={self.must_error}, frames={shown!r})"


ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=16),
    st.binary(max_size=16),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
        st.dictionaries(st.integers(-5, 5) | st.binary(max_size=4), inner, max_size=3),
        st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8)),
        st.builds(msgpack.Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 999_999_999)),
    ),
    max_leaves=10,
)
small_args = st.dictionaries(
    st.sampled_from(["resource_id", "size", "note", "x"]) | st.text(max_size=8),
    st.one_of(st.text(max_size=20), st.integers(-3, 10**6), st.none(), st.booleans()),
    max_size=3,
)
good_ids = st.text(max_size=40)
good_targets = st.sampled_from(["h@b1", "b1", "h@nope", "nope", "actors"]) | st.text(
    min_size=1, max_size=20
)
# every @rpc method of the test manager except `crash` (which kills the manager on purpose)
good_methods = st.sampled_from(
    ["ping", "status", "record", "create", "get", "fail", "create_and_count", "missing", "_x"]
) | st.text(min_size=1, max_size=20).filter(lambda m: m != "crash")
good_timeouts = st.sampled_from([1e-9, 0.5, 10, 3600, 3600.0]) | st.floats(0.01, 3600)
good_versions = st.integers(4000, 4400).map(lambda n: "9" * n + ".1") | st.sampled_from(
    ["1.0", "1.2", "1.3", "2.0", "x", "", "1.2.3", "\u00b2.1"]
)


def _not_crash(envelope: dict[Any, Any]) -> dict[Any, Any]:
    if envelope.get("method") == "crash":
        envelope["method"] = "ping"
    return envelope


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["call", "cast", "ping"]))
    envelope: dict[str, Any] = {"v": 1, "kind": kind, "id": draw(good_ids)}
    if kind != "ping":
        envelope["target"] = draw(good_targets)
        envelope["method"] = draw(good_methods)
        if draw(st.booleans()):
            envelope["args"] = draw(small_args | st.none())
        if draw(st.booleans()):
            envelope["timeout"] = draw(good_timeouts)
        if draw(st.booleans()):
            envelope["version"] = draw(good_versions | st.none())
        if draw(st.booleans()):
            envelope["key"] = draw(st.text(max_size=128) | st.none())
        if draw(st.booleans()):
            envelope["scope"] = draw(good_targets | st.none())
    return envelope


# Values that make a field invalid on their own (MISSING: leave the field out).
NAN, INF = math.nan, math.inf
RESPONSES = sorted(KINDS - REQUEST_KINDS)  # reply, error, ack, pong: not for a server
COMMON_BAD: dict[str, list[Any]] = {
    "v": [MISSING, 0, 2, -1, False, True, "1", None, 1.5, [1], {"v": 1}, b"\x01"],
    "kind": [MISSING, "", "CALL", "nope", None, 1, b"call", ["call"], {"k": 1}, [], *RESPONSES],
    "id": [MISSING, None, 1, b"id", ["x"], {"id": "x"}, "i" * 129, 1.5, True],
}
REQUEST_BAD: dict[str, list[Any]] = {
    "target": [MISSING, "", None, 1, b"h@b1", ["h@b1"], "t" * 256],
    "method": [MISSING, "", None, 1, b"ping", ["ping"], "m" * 256],
    "args": [[], [1], 1, "x", True, b"x", 1.5],
    "timeout": [
        *(NAN, INF, -INF, 0, 0.0, -1, -1e-9, 3600.0001, 1e308, 2**64 - 1, -(2**63)),
        *(True, False, "1", [1], {"t": 1}),  # None means "absent": the default applies
    ],
    "version": [1, 1.2, True, [], {}, b"1.2"],
    "key": [1, [], b"k", "k" * 129, True],
    "scope": [1, [], b"topic:t", "", "s" * 256, True],
}


@st.composite
def broken_envelopes(draw: st.DrawFn) -> Case:
    """A valid request with 1-3 fields made invalid: must get an error reply."""
    envelope = draw(valid_requests())
    kind = envelope["kind"]
    fields = dict(COMMON_BAD)
    if kind != "ping":  # a ping's other fields are not validated
        fields.update(REQUEST_BAD)
    choices = ["__unknown__", "__ext__", *fields]
    broken = draw(st.lists(st.sampled_from(choices), min_size=1, max_size=3, unique=True))
    for name in broken:
        if name == "__unknown__":
            extra = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in ALLOWED_FIELDS))
            envelope[extra] = draw(scalars)
        elif name == "__ext__":  # refused by the unpacker, wherever it is
            field = "args" if kind != "ping" else "info"
            envelope[field] = {"note": msgpack.ExtType(draw(st.integers(0, 127)), b"x")}
        else:
            bad = draw(st.sampled_from(fields[name]))
            if bad is MISSING:
                envelope.pop(name, None)
            else:
                envelope[name] = bad
    return Case((msgpack.packb(envelope),), must_error=True, label=f"broken {broken}")


FIELD_VALUES = {
    "v": st.sampled_from([1, 1, 1, 0, 2, True, "1", 1.0]) | values,
    "kind": st.sampled_from([*sorted(KINDS), "", "nope"]) | values,
    "id": good_ids | st.text(min_size=129, max_size=140) | values,
    "target": good_targets | st.text(min_size=256, max_size=300) | values,
    "method": good_methods | values,
    "args": small_args | values,
    "timeout": good_timeouts | st.floats() | values,
    "version": good_versions | values,
    "key": st.text(max_size=10) | st.text(min_size=129, max_size=140) | values,
    "scope": good_targets | values,
    "error": values,
    "info": values,
    "result": values,
}
random_envelopes = st.fixed_dictionaries({}, optional=FIELD_VALUES).map(_not_crash)
envelopes_with_extras = st.tuples(
    random_envelopes, st.dictionaries(st.text(max_size=8) | st.binary(max_size=4), scalars)
).map(lambda pair: _not_crash({**pair[1], **pair[0]}))


@st.composite
def garbage_msgpack(draw: st.DrawFn) -> Case:
    """Bytes that are not one msgpack object: truncated, trailing data, reserved byte."""
    packed = msgpack.packb(draw(values | valid_requests()))
    how = draw(st.sampled_from(["truncated", "trailing", "reserved"]))
    if how == "truncated":
        body = packed[: draw(st.integers(0, len(packed) - 1))]
    elif how == "trailing":
        body = packed + msgpack.packb(draw(scalars))
    else:
        body = b"\xc1" + draw(st.binary(max_size=16))
    return Case((body,), must_error=True, label=f"garbage {how}")


@st.composite
def oversized(draw: st.DrawFn) -> Case:
    """Bodies around the limits: up to ZMQ_MAX the server refuses, beyond ZeroMQ drops us."""
    size = draw(
        st.sampled_from([MAX, MAX + 1, ZMQ_MAX, ZMQ_MAX + 1, 2 * MAX])
        | st.integers(MAX + 1, ZMQ_MAX)
        | st.integers(ZMQ_MAX + 1, ZMQ_MAX + 65536)
    )
    if draw(st.booleans()):
        body = bytes([draw(st.integers(0, 255))]) * size
    else:  # a well-formed request padded to exactly `size` bytes
        envelope = draw(valid_requests())
        envelope.update(kind="call", target="h@nope", method="record")
        envelope["args"] = {"note": "x" * size}
        over = len(msgpack.packb(envelope)) - size
        envelope["args"] = {"note": "x" * (size - over)}
        body = msgpack.packb(envelope)
        assert len(body) == size
    return Case((body,), must_error=size > MAX, label=f"oversized {size}")


def _frames(body_cases: st.SearchStrategy[Case]) -> st.SearchStrategy[Case]:
    """Single-body cases, sometimes REQ-style (an empty delimiter first)."""

    def wrap(pair: tuple[Case, bool]) -> Case:
        case, req_style = pair
        if not req_style:
            return case
        return Case((b"", *case.frames), case.must_error, f"REQ {case.label}")

    return st.tuples(body_cases, st.booleans()).map(wrap)


def _body(strategy: st.SearchStrategy[Any], label: str) -> st.SearchStrategy[Case]:
    return strategy.map(lambda value: Case((msgpack.packb(value),), label=label))


random_frames = st.lists(
    st.sampled_from([b"", b"\x00", SENTINEL[:5]]) | st.binary(max_size=64), min_size=1, max_size=6
).map(lambda frames: Case(tuple(frames), label="frames"))
cases = st.one_of(
    random_frames,
    _frames(st.binary(max_size=64).map(lambda body: Case((body,), label="bytes"))),
    _frames(garbage_msgpack()),
    _frames(_body(values, "shape")),
    _frames(_body(random_envelopes, "envelope")),
    _frames(_body(envelopes_with_extras, "envelope+extras")),
    _frames(broken_envelopes()),
    _frames(_body(valid_requests(), "valid")),
    _frames(oversized()),
)


# -- what the server should answer ----------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    dropped: bool = False  # ZeroMQ drops the peer: no reply possible
    framing: str = "single"  # "req": after an empty delimiter; "any": not checked
    bad: bool = True  # refused before dispatch: an error, sent at once
    kinds: frozenset[str] = frozenset({"error"})
    reply_id: str | None = None  # None: not checked


def expect(case: Case) -> Expect:
    frames = case.frames
    if any(len(frame) > ZMQ_MAX for frame in frames):
        return Expect(dropped=True)
    if len(frames) == 1:
        body, framing = frames[0], "single"
    elif len(frames) == 2 and frames[0] == b"":
        body, framing = frames[1], "req"
    else:
        return Expect(framing="any", reply_id="")  # bad_frames
    if _has_timestamp(body):  # the timestamp extension is refused like any other (§3)
        return Expect(framing=framing, reply_id=_readable_id(body))
    try:
        envelope = decode(body)
    except Exception:  # whatever decode trips on, the peer deserves an error
        return Expect(framing=framing, reply_id=_readable_id(body))
    if envelope.kind not in REQUEST_KINDS or case.must_error:
        return Expect(framing=framing, reply_id=_readable_id(body))
    return Expect(
        framing=framing,
        bad=False,
        kinds=frozenset(REPLY_KINDS[envelope.kind]),
        reply_id=envelope.id,
    )


def _readable_id(body: bytes) -> str:
    """The id an error reply echoes: the envelope's, when it could be read."""
    if len(body) > MAX:
        return ""
    try:
        data = msgpack.unpackb(body, raw=False, strict_map_key=True, ext_hook=_no_ext)
    except Exception:
        return ""
    msg_id = data.get("id") if isinstance(data, dict) else None
    return msg_id if isinstance(msg_id, str) and len(msg_id) <= 128 else ""


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError("ext")


def _has_timestamp(body: bytes) -> bool:
    """Does the body hold msgpack's timestamp extension (-1), which ext_hook never sees?"""
    try:
        data = msgpack.unpackb(body, raw=False, strict_map_key=False, ext_hook=_no_ext)
    except Exception:
        return False
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, msgpack.Timestamp):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _recv(sock: Any, poller: Any, deadline_ms: int) -> list[bytes] | None:
    if not poller.poll(deadline_ms):
        return None
    frames: list[bytes] = sock.recv_multipart()
    return frames


def _is_sentinel(frames: list[bytes]) -> bool:
    if len(frames) != 1:
        return False
    try:
        data = msgpack.unpackb(frames[0])
    except Exception:
        return False
    return isinstance(data, dict) and data.get("id") == SENTINEL_ID and data.get("kind") == "pong"


def check_case(served: Served, case: Case) -> None:
    """Send one case on a fresh DEALER and check the answer."""
    want = expect(case)
    if want.dropped:
        _check_dropped(served, case)
        return
    sock, _ = served.raw()
    try:
        poller = served.zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        sock.send_multipart(list(case.frames))
        sock.send(SENTINEL)
        replies: list[list[bytes]] = []
        while True:  # everything up to the sentinel's pong
            frames = _recv(sock, poller, REPLY_DEADLINE_MS)
            assert frames is not None, f"no pong for the sentinel after {case!r}"
            if _is_sentinel(frames):
                break
            replies.append(frames)
        if not want.bad and not replies:  # a dispatched request: its reply may come later
            frames = _recv(sock, poller, REPLY_DEADLINE_MS)
            assert frames is not None, f"no reply within the deadline for {case!r}"
            replies.append(frames)
        assert len(replies) == 1, f"expected one reply to {case!r}, got {replies!r}"
        _check_reply(replies[0], want, case)
    finally:
        sock.close(linger=0)


def _check_reply(frames: list[bytes], want: Expect, case: Case) -> None:
    if want.framing == "req":
        assert len(frames) == 2 and frames[0] == b"", f"delimiter not echoed: {frames!r}"
    elif want.framing == "single":
        assert len(frames) == 1, f"unexpected reply framing {frames!r}"
    else:
        assert len(frames) in (1, 2), frames
    reply = decode(frames[-1])
    assert reply.kind in want.kinds, f"{case!r} got {reply!r}"
    if want.reply_id is not None:
        assert reply.id == want.reply_id, f"{case!r} got {reply!r}"
    if want.bad:
        assert reply.error is not None and reply.error.get("type") in ENVELOPE_ERRORS, reply


def _check_dropped(served: Served, case: Case) -> None:
    """ZeroMQ disconnects a peer whose frame exceeds MAXMSGSIZE: wait to see it happen."""
    sock, mon = served.raw(monitor=True)
    try:
        poller = served.zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(mon, zmq.POLLIN)
        sock.send_multipart(list(case.frames))
        events = dict(poller.poll(REPLY_DEADLINE_MS))
        assert events, f"neither a reply nor a disconnect after {case!r}"
        if sock in events:  # allowed, but then it must be an error
            assert decode(sock.recv_multipart()[-1]).kind == "error"
    finally:
        sock.disable_monitor()
        mon.close(linger=0)
        sock.close(linger=0)


# -- the tests ----------------------------------------------------------------------------------


def _edge_cases() -> list[Case]:
    """Every single-field break of the tables above, plus framing and size edges."""
    call = {"v": 1, "kind": "call", "id": "edge", "target": "h@b1", "method": "ping"}
    edges = []
    for name, bads in {**COMMON_BAD, **REQUEST_BAD}.items():
        for bad in bads:
            envelope = {k: v for k, v in call.items() if k != name}
            if bad is not MISSING:
                envelope[name] = bad
            edges.append(Case((msgpack.packb(envelope),), True, f"edge {name}={bad!r:.20}"))
    ping = {"v": 1, "kind": "ping", "id": "edge"}
    edges += [
        Case((msgpack.packb({**ping, "info": msgpack.ExtType(1, b"x")}),), True, "edge ext"),
        Case((msgpack.packb({**call, "args": {"t": msgpack.Timestamp(1)}}),), True, "edge ts"),
        # Found by hypothesis: a timestamp outside args passed (ext_hook never sees one).
        Case((msgpack.packb({**ping, "result": msgpack.Timestamp(0)}),), True, "edge ts result"),
        Case((msgpack.packb({**call, "info": [msgpack.Timestamp(0)]}),), True, "edge ts info"),
        Case((msgpack.packb({**ping, "zz": 1}),), True, "edge unknown field"),
        Case((msgpack.packb({**ping, b"id": "x"}),), True, "edge bytes field"),
        Case((msgpack.packb({**call, 1: 1}),), True, "edge int field"),
        Case((b"", b""), True, "edge REQ empty body"),
        Case((b"", b"", b""), True, "edge REQ two bodies"),
        Case((b"", msgpack.packb(call)), False, "edge REQ call"),
        Case((b"\x00" * (MAX + 1),), True, "edge just over"),
        Case((b"", b"\x00" * ZMQ_MAX), True, "edge REQ at MAXMSGSIZE"),
        Case((b"\x00" * (ZMQ_MAX + 1),), True, "edge over MAXMSGSIZE"),
    ]
    return edges


def _with_edge_cases(test: Callable[..., None]) -> Callable[..., None]:
    for case in reversed(_edge_cases()):  # explicit examples run first, in this order
        test = example(case=case)(test)
    return test


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases)
@_with_edge_cases
def test_server_survives_and_answers_hostile_input(served: Served, case: Case) -> None:
    want = expect(case)
    event(re.sub(r" [\[\d].*", "", case.label))  # see --hypothesis-show-statistics
    event("dropped by ZeroMQ" if want.dropped else "refused" if want.bad else "dispatched")
    check_case(served, case)
    served.assert_healthy()


def test_each_bad_input_category_is_counted_and_answered(served: Served) -> None:
    samples = {
        "bad_frames": [b"one", b"two"],
        "bad_envelope": [b"\xc1 not msgpack"],
        "unexpected_kind": [msgpack.packb({"v": 1, "kind": "reply", "id": "r1", "result": 1})],
    }
    stats = served.server.stats
    for category, frames in samples.items():
        before = dict(stats)
        check_case(served, Case(tuple(frames), must_error=True, label=category))
        assert stats[category] == before.get(category, 0) + 1, (category, stats)
        for other in set(samples) - {category}:
            assert stats[other] == before.get(other, 0), (category, stats)
    assert stats["pings"] == len(samples)  # one sentinel each, nothing else
    served.assert_healthy()
