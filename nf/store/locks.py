"""Datastore locks (RFC 6241 §7.5, §7.6, §8.3.5).

A lock is held by a session until it unlocks or ends.  The candidate lock
carries the candidate's rule both ways: it cannot be taken while the
candidate holds uncommitted changes, and releasing it discards the changes
its holder left (§8.3.5.2).  Which datastore names exist is the rpc
handlers' business; here every target is one that exists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from nf import rfc3339
from nf.config.errors import ConfigError
from nf.store.candidate import Candidate
from nf.store.engine import Engine

log = logging.getLogger(__name__)


def protocol_error(tag: str, message: str, **info: str) -> ConfigError:
    return ConfigError(
        tag, message, type="protocol", info=tuple((k.replace("_", "-"), v) for k, v in info.items())
    )


def always_live(_sid: int) -> bool:
    return True


class Locks:
    def __init__(
        self,
        engine: Engine,
        candidate: Candidate,
        is_live: Callable[[int], bool] = always_live,
    ) -> None:
        self.engine = engine
        self.candidate = candidate
        self.is_live = is_live
        """Whether a session still exists: a killed session's late rpc must
        not take a lock that nothing would ever release."""
        self.holders: dict[str, int] = {}
        self.times: dict[str, str] = {}

    def busy(self, sid: int, name: str) -> ConfigError | None:
        """The error for ``sid`` changing ``name`` while another session holds its lock."""
        holder = self.holders.get(name)
        if holder is not None and holder != sid:
            return protocol_error(
                "in-use",
                f"the {name} datastore is locked by session {holder}",
                session_id=str(holder),
            )
        return None

    async def lock(self, sid: int, target: str) -> list[ConfigError]:
        if not self.is_live(sid):
            return [protocol_error("operation-failed", f"session {sid} is closed")]
        holder = self.holders.get(target)
        if holder is not None:
            return [
                protocol_error(
                    "lock-denied",
                    f"the {target} datastore is already locked by session {holder}",
                    session_id=str(holder),
                )
            ]
        if target == "candidate" and self.candidate.modified(self.engine.running):
            return [
                protocol_error(
                    "lock-denied",
                    "the candidate has uncommitted changes; commit or discard them first",
                    session_id="0",
                )
            ]
        self.holders[target] = sid
        self.times[target] = rfc3339.now(micro=False)
        return []

    async def unlock(self, sid: int, target: str) -> list[ConfigError]:
        holder = self.holders.get(target)
        if holder is None:
            return [protocol_error("operation-failed", f"the {target} datastore is not locked")]
        if holder != sid:
            return [
                protocol_error(
                    "operation-failed",
                    f"the {target} lock is held by session {holder}, not by this session",
                    session_id=str(holder),
                )
            ]
        self._release(sid, target)
        return []

    def session_ended(self, sid: int) -> None:
        """Release the locks of a closed, lost or killed session."""
        for target, holder in list(self.holders.items()):
            if holder == sid:
                self._release(sid, target)

    def info(self) -> dict[str, tuple[int, str]]:
        """datastore -> (holder session-id, locked-time), for /netconf-state."""
        return {name: (sid, self.times.get(name, "")) for name, sid in self.holders.items()}

    def _release(self, sid: int, target: str) -> None:
        del self.holders[target]
        self.times.pop(target, None)
        if target == "candidate":
            # RFC 6241 §8.3.5.2: releasing the candidate lock discards the
            # uncommitted changes of the session that held it
            self.candidate.tree = self.engine.running
        log.debug("session %d released the %s lock", sid, target)
