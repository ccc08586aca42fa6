"""The envelope codec and error encoding, without sockets."""

from __future__ import annotations

import math

import msgpack
import pytest

import actors  # noqa: F401  (registers the allowlist)
from actors.errors import Busy, RemoteError
from transport.errors import ProtocolError, error_from_wire
from transport.protocol import CALL, REPLY, Envelope, Limits, decode, encode, error_body


class QuotaExceeded(Exception):
    pass


class NotFound(Exception):  # same short name as a framework error
    pass


def test_round_trip_of_a_call():
    env = Envelope(
        CALL, "1", target="h@b", method="m", args={"a": [1, 2]}, timeout=2.5, version="1.0", key="k"
    )
    assert decode(encode(env)) == env


def test_defaults_when_optional_fields_are_absent_or_nil():
    body = msgpack.packb(
        {
            "v": 1,
            "kind": "call",
            "id": "x",
            "target": "t",
            "method": "m",
            "args": None,
            "timeout": None,
            "version": None,
            "key": None,
        }
    )
    env = decode(body)
    assert env.args == {} and env.timeout == 60.0 and env.version is None and env.scope is None


def test_a_key_scope_goes_through():
    env = Envelope("call", "x", target="h@b1", method="m", args={}, key="k", scope="topic:t")
    assert decode(encode(env)).scope == "topic:t"


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"v": 1.0}, "protocol version"),
        ({"v": 2}, "protocol version"),
        ({"kind": ["call"]}, "kind"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": 3601}, "timeout"),
        ({"args": {"t": msgpack.Timestamp(1)}}, "extension"),
        ({"args": {"nested": {b"k": 1}}}, "keys must be strings"),
        ({"surprise": 1}, "unknown envelope fields"),
        ({"version": "1." + "0" * 900_000}, "version"),
        ({"version": 1.2}, "version"),
        ({"scope": ""}, "scope"),
        ({"scope": "s" * 256}, "scope"),
        ({"scope": ["topic:t"]}, "scope"),
    ],
)
def test_bad_envelopes_are_refused_with_the_id(patch, reason):
    data = {"v": 1, "kind": "call", "id": "x", "target": "t", "method": "m", **patch}
    with pytest.raises(ProtocolError, match=reason) as err:
        decode(msgpack.packb(data))
    if "v" not in patch:
        assert err.value.details["id"] == "x"


def test_an_infinite_timeout_is_refused_even_under_an_infinite_limit():
    data = {"v": 1, "kind": "call", "id": "x", "target": "t", "method": "m"}
    endless = Limits(max_timeout=math.inf, default_timeout=math.inf)
    for body in ({**data, "timeout": math.inf}, data):  # given, or the default
        with pytest.raises(ProtocolError, match="timeout"):
            decode(msgpack.packb(body), endless)
    assert decode(msgpack.packb(data), Limits(default_timeout=5)).timeout == 5.0


def test_foreign_errors_travel_under_a_qualified_name():
    body = error_body(QuotaExceeded("over quota"))
    assert body["type"] == f"{__name__}.QuotaExceeded"
    assert error_body(ValueError("v"))["type"] == "ValueError"
    # a user's NotFound is not rebuilt as the framework's NotFound
    rebuilt = error_from_wire(error_body(NotFound("x")))
    assert isinstance(rebuilt, RemoteError) and rebuilt.type_name.endswith(".NotFound")


def test_allowlisted_errors_are_rebuilt_with_their_data():
    rebuilt = error_from_wire(Busy("h@b1", 7).to_dict())
    assert isinstance(rebuilt, Busy) and rebuilt.capacity == 7 and rebuilt.retryable


@pytest.mark.parametrize("key", ["message", "self", "details"])
def test_allowlisted_errors_are_rebuilt_whatever_their_detail_keys(key):
    # A newer server (or a user's error) may carry any key; a TypeError here
    # once left the caller waiting out its deadline instead of hearing the error.
    data = Busy("h@b1", 7).to_dict()
    data["details"][key] = "x"
    rebuilt = error_from_wire(data)
    assert isinstance(rebuilt, Busy) and rebuilt.capacity == 7
    assert rebuilt.message == data["message"] and rebuilt.details[key] == "x"


def test_an_allowlisted_error_whose_from_wire_fails_arrives_as_a_remote_error():
    from transport.errors import TransportError, register_error

    class Picky(TransportError):
        @classmethod
        def from_wire(cls, message, details):
            raise ValueError("no")

    register_error(Picky)
    rebuilt = error_from_wire({"type": "Picky", "message": "m", "details": {"a": 1}})
    assert isinstance(rebuilt, RemoteError) and rebuilt.type_name == "Picky"
    assert rebuilt.details["details"] == {"a": 1}


def test_remote_errors_keep_the_wire_retryable_flag():
    data = {"type": "app.Flaky", "message": "try again", "details": {"n": 1}, "retryable": True}
    rebuilt = error_from_wire(data)
    assert isinstance(rebuilt, RemoteError) and rebuilt.retryable
    assert rebuilt.details["details"] == {"n": 1}


def test_replies_with_non_string_keys_are_read_by_clients():
    body = encode(Envelope(REPLY, "1", result={1: "a"}))
    with pytest.raises(ProtocolError):
        decode(body)
    assert decode(body, lenient=True).result == {1: "a"}


def test_replies_with_array_or_map_keys_are_read_by_clients_as_tuples():
    body = encode(Envelope(REPLY, "1", result={("a", 1): [{("b", ("c", 2)): 3}]}))
    with pytest.raises(ProtocolError):
        decode(body)  # a server never accepts such keys in what it is sent
    assert decode(body, lenient=True).result == {("a", 1): [{("b", ("c", 2)): 3}]}
    mapped = msgpack.packb({"v": 1, "kind": "reply", "id": "1", "result": {"k": {}}})
    assert decode(mapped, lenient=True).result == {"k": {}}
    # {{"x": 1}: 2} by hand (Python cannot build it): a map whose key is a map.
    head = msgpack.packb({"v": 1, "kind": "reply", "id": "1", "result": None})[:-1]
    map_key = head + b"\x81" + msgpack.packb({"x": 1}) + msgpack.packb(2)
    assert decode(map_key, lenient=True).result == {frozenset({("x", 1)}): 2}


def test_an_error_quoting_a_huge_input_stays_small_enough_to_send():
    from actors.errors import InvalidArguments

    huge = "x" * 900_000
    body = error_body(InvalidArguments("h@b", "m", f"bad value {huge}"))
    assert len(body["message"]) == 1_000 and "more characters" in body["message"]
    assert len(body["details"]["reason"]) == 1_000
    assert len(encode(Envelope(kind="error", id="i", error=body))) < 10_000
    foreign = error_body(ValueError(huge), traceback="Traceback...\n" + huge + "\nValueError: x")
    assert len(foreign["message"]) == 1_000
    assert len(foreign["traceback"]) < 8_100 and foreign["traceback"].endswith("ValueError: x")
    assert "characters cut" in foreign["traceback"]


def test_a_cut_text_is_exactly_1000_characters_and_says_how_many_it_dropped():
    """§9: the cut text, its note included, is at most 1,000 characters."""
    from actors.errors import InvalidArguments

    for size in (1_000, 1_001, 1_031, 5_000, 1_000_000):
        text = "y" * size
        body = error_body(InvalidArguments("h@b", "m", text))
        reason = body["details"]["reason"]
        if size == 1_000:
            assert reason == text
            continue
        assert len(reason) == 1_000
        kept, _, note = reason.partition("... (")
        assert note.endswith(" more characters)")
        assert len(kept) + int(note.split()[0]) == size
