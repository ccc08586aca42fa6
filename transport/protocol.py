"""The wire protocol: msgpack envelopes, validated on the way in (docs/protocol.md).

One ZeroMQ message is one envelope: a single frame holding a msgpack map (or
two frames, an empty delimiter then the map, for REQ-style peers). Every
envelope carries the protocol version `v`. Nothing is ever unpickled; msgpack
extension types are refused.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import uuid
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import msgpack

from transport.errors import MessageTooLarge, ProtocolError, TransportError

__all__ = [
    "KINDS",
    "PROTOCOL_VERSION",
    "Envelope",
    "Limits",
    "cut_text",
    "decode",
    "encode",
    "encode_reply",
    "encode_request",
    "error_body",
]

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = (1,)

CALL, CAST, REPLY, ERROR, ACK, PING, PONG = "call", "cast", "reply", "error", "ack", "ping", "pong"
REQUEST_KINDS = frozenset({CALL, CAST, PING})
RESPONSE_KINDS = frozenset({REPLY, ERROR, ACK, PONG})
KINDS = REQUEST_KINDS | RESPONSE_KINDS


@dataclass(frozen=True)
class Limits:
    """What a peer accepts; anything beyond is refused with a clear error."""

    max_message_bytes: int = 1 << 20
    max_id_length: int = 128
    max_name_length: int = 255
    max_key_length: int = 128
    max_timeout: float = 3600.0
    default_timeout: float = 60.0


DEFAULT_LIMITS = Limits()


@dataclass(slots=True)
class Envelope:
    """One decoded message. Which fields are set depends on `kind`.

    Read-only by convention: not frozen, as a frozen dataclass costs a
    microsecond more per message to build (two per request on a server).
    """

    kind: str
    id: str
    target: str | None = None
    method: str | None = None
    args: dict[str, Any] | None = None
    timeout: float | None = None
    version: str | None = None
    key: str | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    info: dict[str, Any] | None = None
    scope: str | None = None  # where `key` is one operation: nil, the target (§6)

    def to_map(self) -> dict[str, Any]:
        data: dict[str, Any] = {"v": PROTOCOL_VERSION, "kind": self.kind, "id": self.id}
        if self.target is not None:
            data["target"] = self.target
        if self.method is not None:
            data["method"] = self.method
        if self.args is not None:
            data["args"] = self.args
        if self.timeout is not None:
            data["timeout"] = self.timeout
        if self.version is not None:
            data["version"] = self.version
        if self.key is not None:
            data["key"] = self.key
        if self.scope is not None:
            data["scope"] = self.scope
        if self.error is not None:
            data["error"] = self.error
        if self.info is not None:
            data["info"] = self.info
        if self.kind == REPLY:
            data["result"] = self.result
        return data


def _default(obj: Any) -> Any:
    """Plain-data forms for common result types; anything else is an error."""
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, datetime.datetime | datetime.date | datetime.time):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"cannot send a {type(obj).__name__} over the wire")


def encode(envelope: Envelope, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Pack an envelope; raises ProtocolError if a value cannot be sent."""
    return _pack(envelope.to_map(), envelope.kind, limits)


def encode_reply(msg_id: str, result: Any, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """`encode(Envelope(REPLY, msg_id, result=result))` without the Envelope: a server's
    most frequent message, built straight as its map."""
    return _pack(
        {"v": PROTOCOL_VERSION, "kind": REPLY, "id": msg_id, "result": result}, REPLY, limits
    )


def encode_request(
    kind: str,
    msg_id: str,
    target: str,
    method: str,
    args: dict[str, Any] | None,
    timeout: float,
    version: str | None = None,
    key: str | None = None,
    scope: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """`encode` of a call or a cast, built straight as its map (a client's every request)."""
    data: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "kind": kind,
        "id": msg_id,
        "target": target,
        "method": method,
        "args": args or {},
        "timeout": timeout,
    }
    if version is not None:
        data["version"] = version
    if key is not None:
        data["key"] = key
    if scope is not None:
        data["scope"] = scope
    return _pack(data, kind, limits)


def _pack(data: dict[str, Any], kind: str, limits: Limits) -> bytes:
    try:
        body: bytes = msgpack.packb(data, default=_default, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"cannot encode {kind}: {exc}") from None
    except Exception as exc:  # e.g. a model_dump() of the value that raised
        raise ProtocolError(f"cannot encode {kind}: {type(exc).__name__}: {exc}") from None
    if len(body) > limits.max_message_bytes:
        raise MessageTooLarge(len(body), limits.max_message_bytes)
    return body


MAX_TRACEBACK = 8_000
"""Characters kept of a traceback (its end)."""
MAX_ERROR_TEXT = 1_000
"""Characters kept of an error's message and of each string detail: an error that
quotes a huge input back must not itself be too large to send."""


def error_body(error: BaseException, *, traceback: str | None = None) -> dict[str, Any]:
    """The `error` field for an exception: type, message, details, retryable.

    Long texts are cut to MAX_ERROR_TEXT characters, the note of how much was cut included.
    """
    if isinstance(error, TransportError):
        data = error.to_dict()
        data["details"] = {k: _cut(v) for k, v in _plain(data["details"]).items()}
        data["message"] = _cut(data["message"])
    else:
        # Not one of ours: a qualified name, so it can never be mistaken for a
        # framework error of the same short name on the client's allowlist.
        cls = type(error)
        name = (
            cls.__qualname__
            if cls.__module__ == "builtins"
            else f"{cls.__module__}.{cls.__qualname__}"
        )
        data = {"type": name, "message": _cut(str(error)), "details": {}, "retryable": False}
    if traceback:
        # The end of a traceback says where it failed: keep that.
        if len(traceback) > MAX_TRACEBACK:
            traceback = (
                f"... ({len(traceback) - MAX_TRACEBACK} characters cut)\n"
                + traceback[-MAX_TRACEBACK:]
            )
        data["traceback"] = traceback
    return data


def cut_text(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters in all, a note of what was cut included."""
    if len(text) <= limit:
        return text
    # The note says how many characters were dropped, and its own length
    # decides that number: grow it until they agree (a few steps at most,
    # as the count's digits grow by one at a time).
    dropped = len(text) - limit
    suffix = f"... ({dropped} more characters)"
    while len(text) - dropped + len(suffix) > limit:
        dropped = len(text) - limit + len(suffix)
        suffix = f"... ({dropped} more characters)"
    return text[: len(text) - dropped] + suffix


def _cut(value: Any) -> Any:
    """Cut a long text to MAX_ERROR_TEXT characters in all (see `cut_text`)."""
    if isinstance(value, str):
        return cut_text(value, MAX_ERROR_TEXT)
    if isinstance(value, bytes) and len(value) > MAX_ERROR_TEXT:
        return value[:MAX_ERROR_TEXT]
    return value


def _plain(details: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in details.items():
        try:
            msgpack.packb(value, default=_default, use_bin_type=True)
            out[str(key)] = value
        except Exception:
            out[str(key)] = repr(value)
    return out


def _ext_refused(code: int, data: bytes) -> Any:
    raise ProtocolError(f"msgpack extension type {code} is not allowed")


def _unpack_frozen_keys(body: bytes) -> Any:
    """Unpack a reply whose map keys include arrays or maps, as tuples and frozensets.

    The slow path of a lenient decode, taken only when the plain one failed:
    a result such as {("a", 1): 2} is read back with its tuple key instead of
    leaving the caller to wait out its deadline for a reply it cannot read.
    """
    try:
        return msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=False,
            use_list=True,
            ext_hook=_ext_refused,
            object_pairs_hook=lambda pairs: {_frozen(k): v for k, v in pairs},
        )
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(f"body is not valid msgpack: {type(exc).__name__}") from None


def _frozen(key: Any) -> Any:
    """A hashable form of a decoded map key: arrays as tuples, maps as frozensets of pairs."""
    if isinstance(key, list):
        return tuple(_frozen(item) for item in key)
    if isinstance(key, dict):
        return frozenset((_frozen(k), _frozen(v)) for k, v in key.items())
    return key


_SCALARS = frozenset({str, int, float, bool, bytes, type(None)})
"""Types msgpack decodes that hold nothing else: checked without a call each."""
_MAX_DEPTH = 64


def _check_plain(value: Any, depth: int = 0) -> None:
    """Only plain msgpack data: no extension types (timestamps included), str keys."""
    if depth > _MAX_DEPTH:
        raise _too_deep()
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ProtocolError(f"map keys must be strings, got {type(key).__name__}")
            if type(item) not in _SCALARS:
                _check_plain(item, depth + 1)
            elif depth >= _MAX_DEPTH:
                raise _too_deep()
    elif isinstance(value, list):
        for item in value:
            if type(item) not in _SCALARS:
                _check_plain(item, depth + 1)
            elif depth >= _MAX_DEPTH:
                raise _too_deep()
    elif isinstance(value, msgpack.Timestamp | msgpack.ExtType):
        raise ProtocolError("msgpack extension types (timestamps included) are not allowed")


def _too_deep() -> ProtocolError:
    return ProtocolError(f"arguments nest deeper than {_MAX_DEPTH} levels")


def decode(body: bytes, limits: Limits = DEFAULT_LIMITS, *, lenient: bool = False) -> Envelope:
    """Unpack and validate one envelope; raise ProtocolError saying what is wrong.

    The error's details carry the envelope `id` when it could be read, so the
    peer can correlate the error reply. `lenient` (clients reading replies)
    accepts non-string map keys in results.

    Every message of the wire goes through here (on a server, once per
    request): the checks test exact types (msgpack builds nothing else) and
    build an error only once one fails.
    """
    if len(body) > limits.max_message_bytes:
        raise MessageTooLarge(len(body), limits.max_message_bytes)
    try:
        data = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=not lenient,
            use_list=True,
            ext_hook=_ext_refused,
        )
    except ProtocolError:
        raise
    except TypeError:  # a map key that is an array or a map: unhashable as it came
        if not lenient:
            raise ProtocolError("map keys must be strings") from None
        data = _unpack_frozen_keys(body)
    except Exception as exc:
        raise ProtocolError(f"body is not valid msgpack: {type(exc).__name__}") from None
    if type(data) is not dict:
        raise ProtocolError(f"envelope must be a map, not {type(data).__name__}")
    raw_id = data.get("id")
    msg_id = raw_id if type(raw_id) is str and len(raw_id) <= limits.max_id_length else None
    version = data.get("v")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise _fail(
            msg_id,
            f"unsupported protocol version {version!r}",
            supported=list(SUPPORTED_VERSIONS),
        )
    kind = data.get("kind")
    if type(kind) is not str or kind not in KINDS:
        raise _fail(msg_id, f"unknown message kind {kind!r}")
    if msg_id is None:
        raise _fail(msg_id, f"'id' must be a string of at most {limits.max_id_length} characters")
    if not _ALLOWED_FIELDS.issuperset(data):
        unknown = set(data) - _ALLOWED_FIELDS
        raise _fail(msg_id, f"unknown envelope fields: {', '.join(sorted(map(str, unknown)))}")
    if not lenient and not _FREE_SET.isdisjoint(data):
        # What a peer sends us: plain data everywhere, not only in args.
        for name in _FREE_FIELDS:
            if data.get(name) is not None:
                try:
                    _check_plain(data[name])
                except ProtocolError as exc:
                    raise _fail(msg_id, f"{name!r}: {exc.details['reason']}") from None
    if kind in (CALL, CAST):
        return _request(kind, msg_id, data, limits)
    if kind == REPLY:
        return Envelope(kind, msg_id, result=data.get("result"))
    if kind == ERROR:
        error = data.get("error")
        if type(error) is not dict:
            raise _fail(msg_id, "'error' must be a map")
        return Envelope(kind, msg_id, error=error)
    info = data.get("info")  # pong, ping, ack
    return Envelope(kind, msg_id, info=info if type(info) is dict else None)


def _fail(msg_id: str | None, reason: str, **details: Any) -> ProtocolError:
    """The error for an envelope that is refused, with its id when it could be read."""
    return ProtocolError(reason, id=msg_id, **details)


def _is_name(value: Any, max_length: int) -> bool:
    return type(value) is str and 0 < len(value) <= max_length


def _flat(args: dict[str, Any]) -> bool:
    """True for a map of plain scalars under string keys (most arguments): nothing
    more to check. Anything else goes through `_check_plain`."""
    scalars = _SCALARS
    for key, value in args.items():
        if type(key) is not str or type(value) not in scalars:
            return False
    return True


def _request(kind: str, msg_id: str, data: dict[str, Any], limits: Limits) -> Envelope:
    """The fields of a call or a cast, checked."""
    target, method = data.get("target"), data.get("method")
    max_name = limits.max_name_length
    if not _is_name(target, max_name) or not _is_name(method, max_name):
        name = "method" if _is_name(target, max_name) else "target"
        raise _fail(msg_id, f"{name!r} must be a non-empty string of at most {max_name} characters")
    args = data.get("args")
    if args is None:
        args = {}
    elif type(args) is not dict:
        raise _fail(msg_id, f"'args' must be a map, not {type(args).__name__}")
    elif not _flat(args):
        try:
            _check_plain(args)
        except ProtocolError as exc:
            raise _fail(msg_id, f"'args': {exc.details['reason']}") from None
    timeout = data.get("timeout")
    if timeout is None:
        timeout = float(min(limits.default_timeout, limits.max_timeout))
    # Exact types: a bool is not a number of seconds. The comparison refuses
    # NaN too, and isfinite an infinity when the limit is one.
    if (
        type(timeout) not in _NUMBERS
        or not 0 < timeout <= limits.max_timeout
        or not math.isfinite(timeout)
    ):
        raise _fail(msg_id, f"'timeout' must be a number of seconds in (0, {limits.max_timeout:g}]")
    rpc_version = data.get("version")
    if rpc_version is not None and (
        type(rpc_version) is not str or len(rpc_version) > _MAX_VERSION_LENGTH
    ):
        raise _fail(
            msg_id,
            f"'version' must be a string like '1.2' of at most {_MAX_VERSION_LENGTH} characters",
        )
    key = data.get("key")
    if key is not None and (type(key) is not str or len(key) > limits.max_key_length):
        raise _fail(msg_id, f"'key' must be a string of at most {limits.max_key_length} characters")
    scope = data.get("scope")
    if scope is not None and not _is_name(scope, max_name):
        raise _fail(msg_id, f"'scope' must be a non-empty string of at most {max_name} characters")
    return Envelope(
        kind, msg_id, target, method, args, float(timeout), rpc_version, key, scope=scope
    )


_NUMBERS = (int, float)
_MAX_VERSION_LENGTH = 32  # its format is the server's to judge (UnsupportedVersion)

# Fields whose contents decode() does not otherwise check: msgpack's timestamp
# extension bypasses ext_hook, so it is looked for in them too.
_FREE_FIELDS = ("result", "error", "info")
_FREE_SET = frozenset(_FREE_FIELDS)

_ALLOWED_FIELDS = frozenset(
    {
        "v",
        "kind",
        "id",
        "target",
        "method",
        "args",
        "timeout",
        "version",
        "key",
        "scope",
        "result",
        "error",
        "info",
    }
)
