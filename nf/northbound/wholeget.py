"""The ``<data>`` of an unfiltered ``<get>``/``<get-config>`` as bytes, in
time of what changed since the one before.

Rendering 1000 channels with their state into an lxml tree and serialising
it took 70-160 ms per ``<get>``, although between two polls almost nothing
changes: the configuration only at a commit, the state of an idle channel
not at all.  Here each serial port and channel is kept as the bytes of its
configuration (``Documents``, keyed by the entry node, which trees share
while unchanged) and of its ``<state>`` (keyed by the frozen state object
the data plane reports, equal while nothing happened), and a reply is a
join of those bytes.  Only entries whose configuration or state changed
are rendered, by the same code as always (``render_entry``,
``state_tree``), so the bytes are those of the slow path
(tests/test_wholeget.py compares the two, state and sessions included).

It serves the common case only: the user is unrestricted (NACM prunes
nothing), the with-defaults mode is the basic one (explicit) and there is
no filter; any other request takes the general path.  The rest of the reply
(NACM configuration, NETCONF monitoring, other modules' state) is small and
rendered as always.

A reply that finds nothing changed does no Python work per entry: each
list keeps its entries' bytes (configuration, state and end tag) joined,
and the state object each was made from; which states changed is found
by passes in C (``map``, ``compress``).  The reply is handed on in pieces
(a list is one) to the framing (``nf.northbound.server``), which copies
none of the big ones: a 1.2 MB reply (1000 channels) had been copied
whole five times on its way out, ~0.7 ms each in fresh pages.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter, is_not

from lxml import etree

from nf.config.codec import NC_NS, Documents, ListBytes, ordered_children, render
from nf.config.tree import Child, Node, merge
from nf.model import RelayConfig
from nf.northbound.nacm import Access, prune, reads_everything, subtree_facts
from nf.northbound.operational import state_tree
from nf.northbound.selection import Selection
from nf.runtime.transaction import ChannelState, PortState, Snapshot
from nf.schema import MAIN_MODULE, QName, SchemaIndex

_LISTS = ("serial-port", "channel")
_NAME = attrgetter("name")
_UNSEEN = object()
"""The state of an entry not rendered yet (no state object is this)."""


@dataclass
class _Entries:
    """One list of the reply, kept between replies: each entry's
    configuration (its start tag without the namespace its parent
    declares, its children) and its piece of the reply (that, its
    ``<state>``, its end tag), with the state object the piece was made
    from."""

    done: ListBytes
    """The configuration these entries are of (``Documents.lists``)."""
    names: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    states: list[object] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)
    joined: bytes | None = None
    """The pieces joined, until one of them changes: an idle list is
    handed on as one piece, joined with nothing (a join of 1000 channels
    is 0.4 ms in fresh pages)."""
    source: object = None
    """The snapshot's states the pieces were made from: when the next
    snapshot has the very same (``StateCache`` hands back the snapshot
    kept when nothing changed), nothing is looked at."""


class WholeGet:
    """Byte renderings of whole replies, shared by the sessions (locked)."""

    def __init__(self, schema: SchemaIndex) -> None:
        self.schema = schema
        self._ns = schema.modules[MAIN_MODULE].namespace
        self._top = (self._ns, "serial-over-ip")
        top = schema.root.child(*self._top)
        assert top is not None
        self._top_facts = subtree_facts(top)
        self._documents = Documents(schema)
        self._entries: dict[str, _Entries] = {}
        self._others: dict[QName, tuple[Child, bytes]] = {}
        self._rendered_top: Node | None = None
        self._configured_lists: dict[str, tuple[ListBytes, bytes]] = {}
        self._declared = {
            kind: (f'<{kind} xmlns="{self._ns}"'.encode(), f"<{kind}".encode()) for kind in _LISTS
        }
        """Each list's entry start tag with the namespace, and without."""
        self._lock = threading.Lock()
        self.rendered_states = 0
        """<state> elements rendered so far (the others were reused)."""
        self.pieces_made = 0
        """Entries whose piece of the reply was made again (the others
        were reused without Python work per entry; tests count it)."""
        self.others_rendered = 0
        """Other top-level nodes rendered so far (the others were reused)."""
        self.configurations_rendered = 0
        """serial-over-ip configurations walked for their lists (a reply of
        the same configuration as the one before walks none)."""
        self._configuration: tuple[Node, Access | None, tuple[bytes, ...] | None] | None = None
        """The last configuration alone (a <get-config>), the NACM access it
        was for, and its reply: trees are immutable, so the same tree object
        has the same reply (and an Access is one per policy and user).
        Looking it up again, though it does no work per entry, touched a
        few kilobytes of objects, which after an idle moment (caches cold,
        as between two requests) was 15 of a get-config's 85 us."""

    def data(
        self,
        tree: Node,
        rest_state: Node | None,
        snapshot: Snapshot | None,
        model: RelayConfig,
        access: Access | None = None,
    ) -> list[bytes] | None:
        """``<data>`` of ``tree`` (with the state of ``snapshot`` on its
        ports and channels, and ``rest_state``: the other modules' state,
        for a <get>), in pieces to be joined; None when ``tree`` has what
        this does not render (configuration of the top container outside
        its two lists).  ``access``: a NACM user who reads all of
        serial-over-ip (``readable``), for whom the rest is pruned; None:
        the unrestricted one."""
        if rest_state is None and snapshot is None:
            kept = self._configuration
            if kept is not None and kept[0] is tree and kept[1] is access:
                return None if kept[2] is None else list(kept[2])
            made = self._data(tree, None, None, model, access)
            self._configuration = (tree, access, None if made is None else tuple(made))
            return made
        return self._data(tree, rest_state, snapshot, model, access)

    def readable(self, access: Access) -> bool:
        """Whether ``access`` reads all of serial-over-ip, so that a reply
        for it is this one's (the rest pruned as always)."""
        return reads_everything(access, *self._top_facts)

    def _data(
        self,
        tree: Node,
        rest_state: Node | None,
        snapshot: Snapshot | None,
        model: RelayConfig,
        access: Access | None,
    ) -> list[bytes] | None:
        top = tree.get(self._top)
        if top is not None and not isinstance(top, Node):
            return None
        if isinstance(top, Node) and any(
            q[1] not in _LISTS or q[0] != self._ns for q, _ in top.items()
        ):
            return None
        out = [f'<data xmlns="{NC_NS}">'.encode()]
        if top is not None:
            with self._lock:
                self._ours(top, snapshot, model, out)
        rest_tree = tree.remove(self._top) if top is not None else tree
        if rest_state is not None:
            rest_tree = merge(rest_tree, rest_state)
        if access is not None:
            rest_tree = prune(rest_tree, self.schema, access)
        with self._lock:
            self._rest(rest_tree, out)
        out.append(b"</data>")
        return out

    def _rest(self, rest: Node, out: list[bytes]) -> None:
        """The other top-level nodes, each rendered again only when it is
        not equal to the one before: yang-library and the modules' state
        are the same objects at every <get> (equal at a glance), while
        /netconf-state, with its counters, changes at every rpc."""
        kept: dict[QName, tuple[Child, bytes]] = {}
        for qname, _ in ordered_children(self.schema.root):
            child = rest.get(qname)
            if child is None:
                continue
            found = self._others.get(qname)
            if found is None or found[0] != child:
                data = render(Node({qname: child}), self.schema)
                found = (child, b"".join(etree.tostring(elem) for elem in data))
                self.others_rendered += 1
            kept[qname] = found
            out.append(found[1])
        self._others = kept

    def _ours(
        self, top: Node, snapshot: Snapshot | None, model: RelayConfig, out: list[bytes]
    ) -> None:
        if top is not self._rendered_top:  # the same tree: its lists are those kept
            self._documents.pieces(Node({self._top: top}))
            self._rendered_top = top
            self.configurations_rendered += 1
        lists = self._documents.lists()
        out.append(f'<serial-over-ip xmlns="{self._ns}">'.encode())
        if snapshot is None:
            for name in _LISTS:
                listed = lists.get((self._top, (self._ns, name)))
                if listed is not None:
                    out.append(self._configured(name, listed))
            out.append(b"</serial-over-ip>")
            return
        done = {name: lists.get((self._top, (self._ns, name))) for name in _LISTS}
        if any(
            (kept := self._entries.get(name)) is not None and kept.done is not done[name]
            for name in _LISTS
        ):
            # a commit: the states are rendered against the new model
            self._entries = {}
        for name, states in (("serial-port", snapshot.ports), ("channel", snapshot.channels)):
            listed = done[name]
            if listed is None:
                continue
            entries = self._entries.get(name)
            if entries is None:
                entries = self._entries[name] = self._listed(name, listed)
            self._refresh(name, entries, states, model)
            if entries.joined is None:
                entries.joined = b"".join(entries.pieces)
            out.append(entries.joined)
        out.append(b"</serial-over-ip>")

    def _undeclared(self, kind: str, part: bytes) -> bytes:
        """An entry's XML without the namespace declaration serial-over-ip
        makes already (each entry repeating it was a third of a get-config
        of 1000 channels, encrypted and sent)."""
        declared, start = self._declared[kind]
        if part.startswith(declared):
            return start + part[len(declared) :]
        return part

    def _configured(self, kind: str, listed: ListBytes) -> bytes:
        """A list's configuration as a get-config has it, made once for
        each configuration of the list (``ListBytes`` are kept while it
        does not change)."""
        kept = self._configured_lists.get(kind)
        if kept is None or kept[0] is not listed:
            joined = b"".join(self._undeclared(kind, part) for part in listed.parts.values())
            kept = self._configured_lists[kind] = (listed, joined)
        return kept[1]

    def _listed(self, kind: str, listed: ListBytes) -> _Entries:
        """A list's entries from its configuration, none with its state yet."""
        entries = _Entries(listed)
        close = f"</{kind}>".encode()
        for key, part in listed.parts.items():
            part = self._undeclared(kind, part)
            entries.names.append(key[0])
            entries.bodies.append(part[: -len(close)])
        entries.states = [_UNSEEN] * len(entries.names)
        entries.pieces = [b""] * len(entries.names)
        return entries

    def _refresh(
        self,
        kind: str,
        entries: _Entries,
        states: Sequence[ChannelState | PortState],
        model: RelayConfig,
    ) -> None:
        """Make again the pieces of the entries whose state is not the
        object it was (the runtime hands back the same object for an idle
        channel: the data plane's through ``StateCache``); found in C, so
        that an idle list costs no Python work per entry.  A configured
        entry that does not run has None."""
        if states is entries.source:
            return
        entries.source = states
        by_name = dict(zip(map(_NAME, states), states, strict=True))
        now: list[object] = list(map(by_name.get, entries.names))
        changed = list(compress(range(len(now)), map(is_not, now, entries.states)))
        close = f"</{kind}>".encode()
        for i in changed:
            state = now[i]
            assert state is None or isinstance(state, (ChannelState, PortState))
            rendered = self._render_state(kind, entries.names[i], state, model)
            self.rendered_states += 1
            entries.pieces[i] = entries.bodies[i] + rendered + close
        self.pieces_made += len(changed)
        entries.states = now
        if changed:
            entries.joined = None

    def _render_state(
        self, kind: str, name: str, state: ChannelState | PortState | None, model: RelayConfig
    ) -> bytes:
        if kind == "serial-port":
            selection = Selection(frozenset({name}), frozenset())
            snapshot = Snapshot((), (state,) if isinstance(state, PortState) else ())
        else:
            selection = Selection(frozenset(), frozenset({name}))
            snapshot = Snapshot((state,) if isinstance(state, ChannelState) else (), ())
        data = render(state_tree(snapshot, model, self.schema, selection), self.schema)
        found = data.find(f"{{{self._ns}}}serial-over-ip/{{{self._ns}}}{kind}/{{{self._ns}}}state")
        if found is None:
            return b""
        text = etree.tostring(found)
        # the entry declares the namespace already: drop the repeat
        return text.replace(f' xmlns="{self._ns}"'.encode(), b"", 1)


def splice(reply_head: bytes, raw: Sequence[bytes]) -> list[bytes]:
    """An rpc-reply serialised without body (``<rpc-reply .../>`` or with
    an end tag) with the pieces ``raw`` as its body, in pieces."""
    if reply_head.endswith(b"/>"):
        return [reply_head[:-2], b">", *raw, b"</rpc-reply>"]
    end = reply_head.rindex(b"</")
    return [reply_head[:end], *raw, reply_head[end:]]
