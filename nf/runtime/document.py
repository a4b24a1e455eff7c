"""The control plane's configuration document, kept by the data plane in pieces.

The data plane keeps the running configuration's document (opaque XML
bytes, see ``nf.runtime.transaction``) so that a control plane that
restarts can read it back.  Sent whole, it made every commit cost as much
as the configuration is big: 2 MB encoded, sent, received and decoded per
one-leaf commit at 10 000 channels.  So the document travels as a
``DocumentPatch``: the entries of its big lists (a channel, a serial port)
that changed, against a base version both sides know, and the small rest
(the "layout": literal bytes and the places of the lists) whole.

``Document`` is the kept side: ``check`` says whether a patch applies,
``apply`` applies it in place (in time proportional to the patch), and
``to_bytes`` joins the whole document (only when it is read back).  It
is pure data, standard library only: the data plane imports no XML code.

Order.  A list's entries are kept in the order they came: an entry that
changes keeps its place, a new one goes last, a removed one leaves.  That
is how the control plane's ``ListNode`` orders an ``ordered-by system``
list, so the document reads back in the same order.  A list whose order
is configuration (``ordered-by user``) or that moved otherwise is sent
whole (``ListPatch.whole``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Segment = tuple[str, bytes]
"""A piece of a document's layout: ``("", xml)`` literal XML, or
``(name, b"")`` the place of the list ``name``, whose entries stand there
in order."""


@dataclass(frozen=True)
class ListPatch:
    """One list's change: each entry's XML by key, None for one removed."""

    name: str
    entries: tuple[tuple[str, bytes | None], ...]
    whole: bool = False
    """The entries are the whole list, in order (none removed)."""


@dataclass(frozen=True)
class DocumentPatch:
    """A document (``base`` None) or a change of the one of version ``base``.

    ``layout`` is always whole: the document is its segments in order, a
    list name standing for the list's entries joined.  A list the layout
    no longer names is dropped."""

    version: int
    base: int | None
    layout: tuple[Segment, ...]
    lists: tuple[ListPatch, ...] = ()

    @staticmethod
    def of_bytes(document: bytes, version: int = 0) -> DocumentPatch:
        """A whole document of one opaque piece (tests, the demo)."""
        return DocumentPatch(version, None, (("", document),))


@dataclass
class Document:
    """A document in pieces (see the module)."""

    version: int = 0
    layout: tuple[Segment, ...] = ()
    lists: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def check(self, patch: DocumentPatch) -> str | None:
        """Why ``patch`` cannot be applied to this document (None: it can)."""
        if patch.base is None:
            if any(not lst.whole for lst in patch.lists):
                return "a whole document with a partial list"
            return None
        if patch.base != self.version:
            return f"document version {patch.base} expected, {self.version} kept"
        return None

    def apply(self, patch: DocumentPatch) -> None:
        """Make this document ``patch``'s (``check`` said it can)."""
        lists = {} if patch.base is None else self.lists
        for change in patch.lists:
            if change.whole:
                lists[change.name] = {k: v for k, v in change.entries if v is not None}
                continue
            entries = lists.setdefault(change.name, {})
            for key, xml in change.entries:
                if xml is None:
                    entries.pop(key, None)
                else:
                    entries[key] = xml
        named = {name for name, _ in patch.layout if name}
        if len(named) != len(lists):
            lists = {name: entries for name, entries in lists.items() if name in named}
        self.lists = lists
        self.layout = patch.layout
        self.version = patch.version

    def whole(self) -> DocumentPatch:
        """This document as a patch from nothing (a restarted peer's copy)."""
        lists = tuple(
            ListPatch(name, tuple(entries.items()), whole=True)
            for name, entries in self.lists.items()
        )
        return DocumentPatch(self.version, None, self.layout, lists)

    def to_bytes(self) -> bytes:
        """The document, joined."""
        out: list[bytes] = []
        for name, xml in self.layout:
            if name:
                out.extend(self.lists.get(name, {}).values())
            else:
                out.append(xml)
        return b"".join(out)

    @classmethod
    def of(cls, patch: DocumentPatch) -> Document:
        """The document a whole patch describes."""
        document = cls()
        document.apply(patch)
        return document
