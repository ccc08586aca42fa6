"""The share service's drivers: `local.LocalShareDriver` (directories on this host)
and `fake.FakeShareDriver` (the same contract in memory, for tests)."""
