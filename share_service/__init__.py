"""The reference share service: the framework's first application.

`ShareManager` (`share_service.manager`) over any `ShareDriver` (the contract,
`share_service.drivers.base`): `LocalShareDriver` (`share_service.drivers.local`:
shares are directories on this host) or `FakeShareDriver`
(`share_service.drivers.fake`: in memory, for tests). `share_service.testing`
holds the contract's conformance tests, for any share driver. Its
state lives in its own tables (`share_service.tables`, with their own Alembic
migrations) in the registry database, through `ShareStore`. Its errors are in
`share_service.errors`, its id rule in `share_service.ids`, and the
configuration `actorsd` runs without `--config` in `share_service.defaults`.

It uses only the framework's public API, exactly as a user's service would;
the framework never imports it.
"""
