"""Arguments a journaled method would refuse are answered at once, not journaled (#22:
`actorsctl ops` filled with typos recorded as failed operations)."""

from __future__ import annotations

from typing import Any

import pytest

from actors.errors import InvalidArguments
from actors.testing import ServiceHarness
from tests.support import backend


@pytest.fixture
def h(make_harness: Any) -> ServiceHarness:
    return make_harness({"b1": backend("tests.support:JournaledManager")})  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"resource_id": "r1", "size": "2"}, "size: expected an integer, got a string"),
        ({"resource_id": "r1", "size": 1.5}, "size: expected an integer, got a number"),
        ({"size": 2}, "resource_id: required, missing"),
        ({"resource_id": "r1", "colour": "red"}, "colour: extra inputs are not permitted"),
    ],
)
def test_refused_arguments_are_not_recorded(h, args, reason):
    with pytest.raises(InvalidArguments, match=reason):
        h.call("b1", "provision", **args)
    assert h.service.operations is not None
    assert h.service.operations.journal.list() == []
    assert h.call("b1", "provision", resource_id="r1", size=2) == {"id": "r1", "size": 2}
    [record] = h.service.operations.journal.list()
    assert record.state == "succeeded"
