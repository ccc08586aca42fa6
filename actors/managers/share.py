"""`ShareManager`: the reference share service, in the style of manila's share manager.

Shares live on a driver (LocalShareDriver: directories under a root;
FakeShareDriver: in memory, for tests). Their state (creating, available,
extending, shrinking, reverting, deleting, error) is kept in the registry
database, so a restarted service knows every share; `init_host` runs the
driver's `ensure_share` for each, repairing what it can and marking the rest
error with the reason.

Every change is a journaled operation. A share moves to a transitional state
atomically before the driver works on it (a second change meanwhile gets the
retryable ShareNotAvailable), and back to 'available' or to 'error' after.
Database work runs off the actors; the manager never blocks on it or on the
driver.

Backend options (`manager_options`): `quota_gb` (total size of the backend's
shares; none by default).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from actors.errors import DriverNotReady, InvalidArguments
from actors.manager_actor import ManagerActor
from actors.registry.shares import ShareStore
from actors.rpc import rpc
from actors.runtime import ActorFuture

__all__ = ["ShareManager", "ShareManagerOptions"]

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ACCESS_LEVELS = ("rw", "ro")
_TRANSITIONAL = ("creating", "extending", "shrinking", "reverting", "snapshotting", "updating")
_ENSURE_RETRY = 1.0  # seconds before ensure_share asks a driver that is not ready again


class ShareManagerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    quota_gb: int | None = Field(None, ge=1, description="total GB of this backend's shares")


def _raise(error: BaseException) -> Any:
    raise error


class ShareManager(ManagerActor):
    """Shares, snapshots and access rules of one backend."""

    RPC_API_VERSION: ClassVar[str] = "1.0"

    # -- lifecycle ----------------------------------------------------------------------
    def init_host(self) -> None:
        if self.registry is None:
            raise RuntimeError("ShareManager keeps its shares in the registry: enable it")
        self.options = ShareManagerOptions.model_validate(self.config.manager_options)
        self.store = ShareStore(self.registry)
        # Queued before any request can reach the driver: the driver runs them first.
        shares = self.runtime.offload(self.store.shares, self.name).result(
            timeout=self.config.driver_timeout
        )
        self.ensured = 0
        for share in shares:
            if share["state"] != "deleting":
                self._ensure(share)

    def _ensure(self, share: dict[str, Any]) -> None:
        work = self.driver.ensure_share(share["id"], share["size_gb"], share["access_rules"])

        def done(finished: ActorFuture[Any]) -> Any:
            error = finished.exception()
            if isinstance(error, DriverNotReady):  # not an answer about the share: ask again
                self.call_later(_ENSURE_RETRY, lambda: self._ensure(share))
                return None
            self.ensured += 1
            if error is not None:
                self.log.error("share %s cannot be repaired: %s", share["id"], error)
                return self._db(self.store.update, share["id"], state="error", reason=str(error))
            repaired = finished.value().get("repaired") or []
            if repaired:
                self.log.warning("share %s repaired: %s", share["id"], ", ".join(repaired))
            if share["state"] in _TRANSITIONAL:
                # Cut short by a crash: the data is there, the size is what the row says.
                return self._db(
                    self.store.update, share["id"], state="available", reason="recovered"
                )
            return None

        self.pipe(work, done)

    # -- shares -------------------------------------------------------------------------
    @rpc(journal=True)
    def create_share(self, share_id: str, size_gb: int, name: str | None = None) -> Any:
        """Create a share of `size_gb` GB; returns it (state 'available')."""
        _check_id(self.name, "create_share", "share_id", share_id)
        _check_size(self.name, "create_share", "size_gb", size_gb)
        recorded = self._db(
            self.store.create, share_id, self.name, size_gb, name, self.options.quota_gb
        )

        def create(_: Any) -> Any:
            return self._finish(
                share_id,
                self.driver.create_share(share_id, size_gb),
                lambda made: {"state": "available", "export_path": made["export_path"]},
            )

        return self.then(recorded, create)

    @rpc(idempotent=True)
    def delete_share(self, share_id: str) -> Any:
        """Delete a share, its snapshots and its exports."""
        held = self._transition(share_id, ("available", "error", "deleting"), "deleting")

        def delete(_: Any) -> Any:
            removed = self.then(
                self.driver.delete_share(share_id),
                lambda __: self._db(self.store.delete, share_id),
            )
            return self.pipe(removed, lambda done: self._after_delete(share_id, done))

        return self.then(held, delete)

    def _after_delete(self, share_id: str, done: ActorFuture[Any]) -> Any:
        error = done.exception()
        if error is None:
            return {"share_id": share_id, "deleted": True}
        marked = self._db(self.store.update, share_id, state="error", reason=str(error))
        return self.then(marked, lambda _: _raise(error))

    @rpc(journal=True)
    def extend_share(self, share_id: str, new_size_gb: int) -> Any:
        """Grow a share to `new_size_gb` (within the backend's quota)."""
        _check_size(self.name, "extend_share", "new_size_gb", new_size_gb)

        def extend(share: dict[str, Any]) -> Any:
            return self._finish(
                share_id,
                self.driver.extend_share(share_id, new_size_gb),
                lambda _: {"state": "available"},
            )

        return self.then(self._resize(share_id, new_size_gb, "extending", grow=True), extend)

    @rpc(journal=True)
    def shrink_share(self, share_id: str, new_size_gb: int) -> Any:
        """Shrink a share; refused (ShareTooSmall) below the space its data uses."""
        _check_size(self.name, "shrink_share", "new_size_gb", new_size_gb)

        def shrink(_: dict[str, Any]) -> Any:
            work = self.driver.shrink_share(share_id, new_size_gb)

            def done(finished: ActorFuture[Any]) -> Any:
                error = finished.exception()
                if error is None:
                    return self._db(
                        self.store.update, share_id, state="available", size_gb=new_size_gb
                    )
                if type(error).__name__ == "ShareTooSmall":  # nothing changed on the host
                    back = self._db(self.store.update, share_id, state="available")
                    return self.then(back, lambda _: _raise(error))
                failed = self._db(self.store.update, share_id, state="error", reason=str(error))
                return self.then(failed, lambda _: _raise(error))

            return self.pipe(work, done)

        return self.then(self._resize(share_id, new_size_gb, "shrinking", grow=False), shrink)

    def _resize(self, share_id: str, new_size: int, state: str, *, grow: bool) -> Any:
        """Check the direction against the current size, then take the share."""
        current = self._db(self.store.get, share_id)

        def take(share: dict[str, Any]) -> Any:
            if grow and new_size <= share["size_gb"]:
                raise InvalidArguments(
                    self.name, "extend_share", f"new size must exceed {share['size_gb']} GB"
                )
            if not grow and new_size >= share["size_gb"]:
                raise InvalidArguments(
                    self.name, "shrink_share", f"new size must be below {share['size_gb']} GB"
                )
            fields = {"size_gb": new_size} if grow else {}
            return self._transition(
                share_id, ("available",), state, quota_gb=self.options.quota_gb, **fields
            )

        return self.then(current, take)

    @rpc
    def get_share(self, share_id: str) -> Any:
        """One share with its snapshots and access rules."""
        return self._db(self.store.get, share_id)

    @rpc
    def list_shares(self) -> Any:
        """Every share of this backend."""
        listed = self._db(self.store.shares, self.name)
        return self.then(listed, lambda shares: {"shares": shares, "count": len(shares)})

    # -- snapshots ---------------------------------------------------------------------
    @rpc(journal=True)
    def create_snapshot(self, share_id: str, snapshot_id: str) -> Any:
        """Snapshot an available share (a real copy on the local driver)."""
        _check_id(self.name, "create_snapshot", "snapshot_id", snapshot_id)
        held = self._transition(share_id, ("available",), "snapshotting")

        def snapshot(_: Any) -> Any:
            recorded = self._db(self.store.add_snapshot, share_id, snapshot_id)
            copied = self.then(
                recorded, lambda __: self.driver.create_snapshot(share_id, snapshot_id)
            )

            def done(finished: ActorFuture[Any]) -> Any:
                error = finished.exception()
                back = self._db(self.store.update, share_id, state="available")
                if error is not None:
                    if type(error).__name__ == "SnapshotExists":
                        return self.then(back, lambda _: _raise(error))
                    marked = self.then(
                        back,
                        lambda _: self._db(
                            self.store.update_snapshot,
                            share_id,
                            snapshot_id,
                            state="error",
                            reason=str(error),
                        ),
                    )
                    return self.then(marked, lambda _: _raise(error))
                made = finished.value()
                return self.then(
                    back,
                    lambda _: self._db(
                        self.store.update_snapshot,
                        share_id,
                        snapshot_id,
                        state="available",
                        size_bytes=made.get("size_bytes"),
                    ),
                )

            return self.pipe(copied, done)

        return self.then(held, snapshot)

    @rpc(idempotent=True)
    def delete_snapshot(self, share_id: str, snapshot_id: str) -> Any:
        """Delete a snapshot."""
        known = self._db(self.store.get_snapshot, share_id, snapshot_id)
        removed = self.then(known, lambda _: self.driver.delete_snapshot(share_id, snapshot_id))
        gone = self.then(
            removed, lambda _: self._db(self.store.delete_snapshot, share_id, snapshot_id)
        )
        return self.then(gone, lambda _: {"share_id": share_id, "snapshot_id": snapshot_id})

    @rpc(journal=True)
    def revert_to_snapshot(self, share_id: str, snapshot_id: str) -> Any:
        """Put the share's content back as it was in the snapshot."""
        known = self._db(self.store.get_snapshot, share_id, snapshot_id)

        def take(snapshot: dict[str, Any]) -> Any:
            if snapshot["state"] != "available":
                raise InvalidArguments(
                    self.name, "revert_to_snapshot", f"snapshot is {snapshot['state']}"
                )
            return self._transition(share_id, ("available",), "reverting")

        def revert(_: Any) -> Any:
            return self._finish(
                share_id,
                self.driver.revert_to_snapshot(share_id, snapshot_id),
                lambda __: {"state": "available"},
            )

        return self.then(self.then(known, take), revert)

    # -- access rules -------------------------------------------------------------------
    @rpc(idempotent=True)
    def allow_access(self, share_id: str, rule: dict[str, Any]) -> Any:
        """Allow `rule` = {"access_to": "10.0.0.0/24", "access_level": "rw"|"ro"}."""
        rule = _check_rule(self.name, rule)

        def change(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
            kept = [r for r in rules if r["access_to"] != rule["access_to"]]
            return [*kept, rule]

        return self._change_access(share_id, change)

    @rpc(idempotent=True)
    def deny_access(self, share_id: str, access_to: str) -> Any:
        """Remove the rule for `access_to`."""
        return self._change_access(
            share_id, lambda rules: [r for r in rules if r["access_to"] != access_to]
        )

    def _change_access(self, share_id: str, change: Any) -> Any:
        held = self._transition(share_id, ("available",), "updating")

        def apply(share: dict[str, Any]) -> Any:
            rules = change(share["access_rules"])
            return self._finish(
                share_id,
                self.driver.update_access(share_id, rules),
                lambda _: {"state": "available", "access_rules": rules},
                error_state="available",  # the exports file is unchanged on failure
            )

        return self.then(held, apply)

    # -- capabilities -------------------------------------------------------------------
    @rpc
    def get_capabilities(self) -> Any:
        """The driver's capacity and capabilities, with this backend's quota and allocation."""
        stats = self.driver.get_stats()
        shares = self._db(self.store.shares, self.name)

        def combine(listed: list[dict[str, Any]]) -> Any:
            allocated = sum(s["size_gb"] for s in listed)
            return self.then(
                stats,
                lambda caps: {
                    **caps,
                    "backend": self.name,
                    "quota_gb": self.options.quota_gb,
                    "allocated_gb": allocated,
                    "shares": len(listed),
                },
            )

        return self.then(shares, combine)

    # -- helpers ------------------------------------------------------------------------
    def _db(self, fn: Any, *args: Any, **kwargs: Any) -> ActorFuture[Any]:
        """Database work off the actors (kwargs allowed)."""
        if kwargs:
            return self.runtime.offload(lambda: fn(*args, **kwargs))
        return self.runtime.offload(fn, *args)

    def _transition(self, share_id: str, expected: tuple[str, ...], state: str, **kw: Any) -> Any:
        return self._db(self.store.transition, share_id, expected, state, **kw)

    def _finish(
        self,
        share_id: str,
        work: ActorFuture[Any],
        on_success: Any,
        error_state: str = "error",
    ) -> ActorFuture[Any]:
        """After the driver: record success (and return the share) or the error state."""

        def done(finished: ActorFuture[Any]) -> Any:
            error = finished.exception()
            if error is None:
                return self._db(
                    self.store.update, share_id, reason=None, **on_success(finished.value())
                )
            reason = str(error) if error_state == "error" else None
            marked = self._db(self.store.update, share_id, state=error_state, reason=reason)
            return self.then(marked, lambda _: _raise(error))

        return self.pipe(work, done)


def _check_id(target: str, method: str, what: str, value: str) -> None:
    if not SAFE_ID.match(value):
        raise InvalidArguments(
            target,
            method,
            f"{what} {value!r} must be 1-64 letters, digits, '-' or '_' (not '-' or '_' first)",
        )


def _check_size(target: str, method: str, what: str, value: int) -> None:
    if value <= 0:
        raise InvalidArguments(target, method, f"{what} must be a positive number of GB: {value}")


def _check_rule(target: str, rule: dict[str, Any]) -> dict[str, Any]:
    access_to, level = rule.get("access_to"), rule.get("access_level", "rw")
    if not isinstance(access_to, str) or not access_to:
        raise InvalidArguments(target, "allow_access", "rule needs 'access_to' (a string)")
    if level not in ACCESS_LEVELS:
        raise InvalidArguments(
            target, "allow_access", f"access_level must be one of {ACCESS_LEVELS}"
        )
    extra = set(rule) - {"access_to", "access_level"}
    if extra:
        raise InvalidArguments(target, "allow_access", f"unknown rule keys: {sorted(extra)}")
    return {"access_to": access_to, "access_level": level}
