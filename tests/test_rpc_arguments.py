"""RPC argument checking: the fast path decides exactly as pydantic does.

Calls whose keywords all have exactly their annotated builtin type skip pydantic
(`actors.rpc._fast_caller`); everything else is validated by it. These tests pin
down that both paths give the same outcome for any arguments.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.errors import InvalidArguments
from actors.rpc import bind_validated, rpc

rpc_module = sys.modules["actors.rpc"]  # `actors.rpc` the name is the decorator


class Shapes:
    @rpc
    def required_only(self, size: int, name: str) -> tuple[Any, ...]:
        return (size, name)

    @rpc
    def defaults(
        self,
        size: int = 1,
        ratio: float = 0.5,
        label: str | None = None,
        flag: bool = False,
        anything=None,  # type: ignore[no-untyped-def]
        meta: dict[str, int] | None = None,
    ) -> tuple[Any, ...]:
        return (size, ratio, label, flag, anything, meta)

    @rpc
    def keyword_only(self, *, share_id: str, data: bytes = b"") -> tuple[Any, ...]:
        return (share_id, data)

    @rpc
    def nothing(self) -> str:
        return "nothing"

    @rpc
    def builtin_names(self, type: str, list: int = 0) -> tuple[Any, ...]:
        return (type, list)

    @rpc
    def constrained(self, size: Annotated[int, pydantic.Field(gt=0)] = 1) -> int:
        return size

    @rpc
    def containers(self, items: list, meta: dict | None = None) -> tuple[Any, ...]:
        return (items, meta)


METHODS = [
    "required_only",
    "defaults",
    "keyword_only",
    "nothing",
    "builtin_names",
    "constrained",
    "containers",
]
NAMES = [
    "size",
    "name",
    "ratio",
    "label",
    "flag",
    "anything",
    "meta",
    "share_id",
    "data",
    "zz",
    "type",
    "list",
    "items",
]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=3),
    st.binary(max_size=3),
    st.dictionaries(st.text(max_size=2), st.one_of(st.integers(), st.text(max_size=2)), max_size=2),
    st.lists(st.integers(), max_size=2),
)


def _outcome(call: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any]:
    try:
        return ("ok", call(*args, **kwargs))
    except InvalidArguments as exc:
        return ("invalid", str(exc))


def _callers(method: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    info = getattr(Shapes, method).__actors_rpc__
    fast = bind_validated("t", info, Shapes())
    with monkeypatch.context() as patched:
        patched.setattr(rpc_module, "_fast_caller", lambda *a, **k: None)
        slow = bind_validated("t", info, Shapes())
    return fast, slow


@pytest.mark.parametrize("method", METHODS)
def test_the_fast_path_is_taken_for_plain_signatures(method, monkeypatch):
    fast, slow = _callers(method, monkeypatch)
    assert fast.__qualname__ == "_fast_caller.<locals>.call"
    assert slow.__code__ is not fast.__code__


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=150, deadline=None)
@given(
    kwargs=st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=4),
    positional=st.lists(VALUES, max_size=1),
)
def test_fast_and_pydantic_paths_agree(method, kwargs, positional):
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast, slow = _callers(method, monkeypatch)
    args = tuple(positional)
    got, expected = _outcome(fast, args, kwargs), _outcome(slow, args, kwargs)
    if expected[0] == "ok":
        assert got == expected
    else:  # refused by both; with several bad arguments either may be named first
        assert got[0] == "invalid", got


def test_exact_types_skip_pydantic_and_others_are_coerced_or_refused(monkeypatch):
    fast, _ = _callers("defaults", monkeypatch)
    assert fast(size=3, label="x") == (3, 0.5, "x", False, None, None)
    assert fast(ratio=2) == (1, 2.0, None, False, None, None)  # int -> float, by pydantic
    assert fast(meta={"a": "1"}) == (1, 0.5, None, False, None, {"a": 1})
    with pytest.raises(InvalidArguments, match="size: expected an integer, got a boolean"):
        fast(size=True)
    with pytest.raises(InvalidArguments, match=r"(?i)unexpected"):
        fast(sizes=1)


def test_parameters_may_be_named_like_builtins(monkeypatch):
    fast, _ = _callers("builtin_names", monkeypatch)
    assert fast(type="disk", list=2) == ("disk", 2)
    assert fast(type="disk") == ("disk", 0)


def test_annotated_constraints_are_checked_by_pydantic(monkeypatch):
    fast, _ = _callers("constrained", monkeypatch)
    assert fast(size=3) == 3
    with pytest.raises(InvalidArguments, match="size"):
        fast(size=-1)


def test_containers_reach_the_method_as_copies_like_pydantic_gives(monkeypatch):
    # In process, the caller's list and dict stay its own, whatever the method does.
    fast, _ = _callers("containers", monkeypatch)
    items, meta = [1], {"a": 1}
    got_items, got_meta = fast(items=items, meta=meta)
    assert got_items == items and got_items is not items
    assert got_meta == meta and got_meta is not meta
    assert fast(items=items, meta=None) == ([1], None)


def test_a_mutable_default_is_fresh_for_every_call(monkeypatch):
    class Appender:
        @rpc
        def append(self, items: list = []) -> int:  # noqa: B006
            items.append(1)
            return len(items)

    fast = bind_validated("t", Appender.append.__actors_rpc__, Appender())
    assert [fast(), fast(), fast()] == [1, 1, 1]


def test_an_omitted_default_is_the_methods_own_default(monkeypatch):
    fast, _ = _callers("keyword_only", monkeypatch)
    assert fast(share_id="s") == ("s", b"")
    with pytest.raises(InvalidArguments, match=r"(?i)missing"):
        fast()
