"""The share service's drivers: the contract `base.ShareDriver` (an abstract base
class), `local.LocalShareDriver` (directories on this host) and
`fake.FakeShareDriver` (the same contract in memory, for tests)."""

from share_service.drivers.base import ShareDriver

__all__ = ["ShareDriver"]
