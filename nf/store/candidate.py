"""The candidate datastore (RFC 6241 §8.3).

An unmodified candidate tracks running (§8.3.1): ``follow`` is one of the
engine's subscribers, so it moves along in the same step as running
changes, whoever changed it (a commit, an edit of running, a rollback).
"""

from __future__ import annotations

from nf.config.tree import Node
from nf.store.engine import CommitEvent


class Candidate:
    def __init__(self, tree: Node) -> None:
        self.tree = tree
        """Immutable, replaced whole (safe to read from any thread)."""

    def modified(self, running: Node) -> bool:
        """Does the candidate hold changes not in ``running``?"""
        return self.tree is not running and self.tree != running

    def follow(self, event: CommitEvent) -> None:
        """Running changed: an unmodified candidate becomes the new running."""
        if event.datastore == "running" and not self.modified(event.before):
            self.tree = event.after
