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
"""

from __future__ import annotations

import threading

from lxml import etree

from nf.config.codec import NC_NS, Documents, render
from nf.config.tree import Key, Node, merge
from nf.model import RelayConfig
from nf.northbound.operational import state_tree
from nf.northbound.selection import Selection
from nf.runtime.transaction import ChannelState, PortState, Snapshot
from nf.schema import MAIN_MODULE, SchemaIndex

_LISTS = ("serial-port", "channel")


class WholeGet:
    """Byte renderings of whole replies, shared by the sessions (locked)."""

    def __init__(self, schema: SchemaIndex) -> None:
        self.schema = schema
        self._ns = schema.modules[MAIN_MODULE].namespace
        self._top = (self._ns, "serial-over-ip")
        self._documents = Documents(schema)
        self._states: dict[object, tuple[object, bytes]] = {}
        self._lock = threading.Lock()
        self.rendered_states = 0
        """<state> elements rendered so far (the others were reused)."""

    def data(
        self,
        tree: Node,
        rest_state: Node | None,
        snapshot: Snapshot | None,
        model: RelayConfig,
    ) -> bytes | None:
        """``<data>`` of ``tree`` (with the state of ``snapshot`` on its
        ports and channels, and ``rest_state``: the other modules' state,
        for a <get>); None when ``tree`` has what this does not render
        (configuration of the top container outside its two lists)."""
        top = tree.get(self._top)
        if top is not None and not isinstance(top, Node):
            return None
        if isinstance(top, Node) and any(
            q[1] not in _LISTS or q[0] != self._ns for q, _ in top.items()
        ):
            return None
        with self._lock:
            ours = self._ours(top, snapshot, model) if top is not None else b""
        rest_tree = tree.remove(self._top) if top is not None else tree
        if rest_state is not None:
            rest_tree = merge(rest_tree, rest_state)
        rest = render(rest_tree, self.schema)
        others = b"".join(etree.tostring(child) for child in rest)
        return b"".join((f'<data xmlns="{NC_NS}">'.encode(), ours, others, b"</data>"))

    def _ours(self, top: Node, snapshot: Snapshot | None, model: RelayConfig) -> bytes:
        self._documents.render(Node({self._top: top}))
        lists = self._documents.lists()
        out = [f'<serial-over-ip xmlns="{self._ns}">'.encode()]
        kept: dict[object, tuple[object, bytes]] = {}
        if snapshot is None:
            for name in _LISTS:
                joined = lists.get((self._top, (self._ns, name)))
                if joined is not None:
                    out.append(joined.joined)
            out.append(b"</serial-over-ip>")
            return b"".join(out)
        ports = {p.name: p for p in snapshot.ports}
        channels = {c.name: c for c in snapshot.channels}
        for name, states, close in (
            ("serial-port", ports, b"</serial-port>"),
            ("channel", channels, b"</channel>"),
        ):
            done = lists.get((self._top, (self._ns, name)))
            if done is None:
                continue
            for key, part in done.parts.items():
                state = self._state(name, key, states.get(key[0]), model, kept)
                out.append(part[: -len(close)] + state + close)
        self._states = kept  # states of channels gone or changed are let go
        out.append(b"</serial-over-ip>")
        return b"".join(out)

    def _state(
        self,
        kind: str,
        key: Key,
        state: ChannelState | PortState | None,
        model: RelayConfig,
        kept: dict[object, tuple[object, bytes]],
    ) -> bytes:
        """The ``<state>`` element of one entry: reused while its frozen
        state is the same object (a configured entry that does not run has
        None).  The runtime hands back the same state object for an idle
        channel (the data plane's through ``StateCache``): looked up by
        identity, not by hashing every state's counters and sessions."""
        cache_key = (kind, key, id(state))
        found = self._states.get(cache_key)
        if found is None or found[0] is not state:
            found = (state, self._render_state(kind, key[0], state, model))
            self.rendered_states += 1
        kept[cache_key] = found
        return found[1]

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


def splice(reply_head: bytes, raw: bytes) -> bytes:
    """An rpc-reply serialised without body (``<rpc-reply .../>`` or with
    an end tag) with ``raw`` as its body."""
    if reply_head.endswith(b"/>"):
        return reply_head[:-2] + b">" + raw + b"</rpc-reply>"
    end = reply_head.rindex(b"</")
    return reply_head[:end] + raw + reply_head[end:]
