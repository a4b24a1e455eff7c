"""ietf-netconf-monitoring (RFC 6022): /netconf-state and <get-schema>.

The state is produced from the live objects (server sessions and counters,
datastore locks, the schema's modules) each time a client asks, then
parsed into a tree like any other state so filters and rendering treat it
uniformly.
"""

from __future__ import annotations

from lxml import etree

from nf.config.codec import parse
from nf.config.errors import ConfigError
from nf.config.tree import Node, merge
from nf.schema import SchemaIndex

NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
_Q = f"{{{NCM}}}"


def _leaf(parent: etree._Element, name: str, value: object) -> None:
    etree.SubElement(parent, _Q + name).text = str(value)


def state_tree(
    schema: SchemaIndex,
    capabilities: list[str],
    locks: dict[str, tuple[int, str]],
    datastores: list[str],
    sessions: list[dict[str, object]],
    statistics: dict[str, object],
) -> Node:
    """/netconf-state as a tree; ``locks``: datastore -> (session-id, locked-time).

    The capabilities and the schemas do not change while the daemon runs:
    they are parsed once (``_fixed``) and merged with what does, which is
    small; parsing all of it made a third of a whole <get>'s own work."""
    holder = etree.Element("data")
    top = etree.SubElement(holder, _Q + "netconf-state", nsmap={None: NCM})  # type: ignore[dict-item]
    stores = etree.SubElement(top, _Q + "datastores")
    for name in datastores:
        ds = etree.SubElement(stores, _Q + "datastore")
        _leaf(ds, "name", name)
        if name in locks:
            sid, when = locks[name]
            glock = etree.SubElement(etree.SubElement(ds, _Q + "locks"), _Q + "global-lock")
            _leaf(glock, "locked-by-session", sid)
            _leaf(glock, "locked-time", when)
    rows = etree.SubElement(top, _Q + "sessions")
    for row in sessions:
        session = etree.SubElement(rows, _Q + "session")
        for name, value in row.items():
            _leaf(session, name, value)
    stats = etree.SubElement(top, _Q + "statistics")
    for name, value in statistics.items():
        _leaf(stats, name, value)
    return merge(_fixed(schema, tuple(capabilities)), _parsed(holder, schema))


_FIXED: dict[tuple[int, tuple[str, ...]], tuple[SchemaIndex, Node]] = {}
"""(schema, capabilities) -> their part of /netconf-state (the schema
is kept with it: its id is not reused while it is)."""


def _fixed(schema: SchemaIndex, capabilities: tuple[str, ...]) -> Node:
    """/netconf-state/capabilities and /netconf-state/schemas."""
    found = _FIXED.get((id(schema), capabilities))
    if found is not None and found[0] is schema:
        return found[1]
    holder = etree.Element("data")
    top = etree.SubElement(holder, _Q + "netconf-state", nsmap={None: NCM})  # type: ignore[dict-item]
    caps = etree.SubElement(top, _Q + "capabilities")
    for uri in capabilities:
        _leaf(caps, "capability", uri)
    schemas = etree.SubElement(top, _Q + "schemas")
    for info in sorted(schema.modules.values(), key=lambda m: m.name):
        entry = etree.SubElement(schemas, _Q + "schema")
        _leaf(entry, "identifier", info.name)
        _leaf(entry, "version", info.revision or "")
        _leaf(entry, "format", "yang")
        _leaf(entry, "namespace", info.namespace)
        _leaf(entry, "location", "NETCONF")
    tree = _parsed(holder, schema)
    _FIXED[(id(schema), capabilities)] = (schema, tree)
    return tree


def _parsed(holder: etree._Element, schema: SchemaIndex) -> Node:
    tree, errors = parse(holder, schema, allow_state=True)
    if errors:  # our own output must fit the module; a failure is a bug
        raise AssertionError(f"netconf-state does not fit ietf-netconf-monitoring: {errors}")
    return tree


def get_schema(schema: SchemaIndex, op: etree._Element) -> etree._Element:
    """<get-schema>: the exact YANG text of a module we advertise."""
    params = {
        etree.QName(c).localname: (c.text or "").strip() for c in op if isinstance(c.tag, str)
    }
    unknown = set(params) - {"identifier", "version", "format"}
    if unknown:
        raise SchemaRequestError("unknown-element", f"get-schema has no input {sorted(unknown)[0]}")
    identifier = params.get("identifier")
    if not identifier:
        raise SchemaRequestError("missing-element", "get-schema needs an identifier")
    info = schema.modules.get(identifier)
    version = params.get("version")
    if info is None or (version and version != (info.revision or "")):
        raise SchemaRequestError(
            "invalid-value",
            f'no schema "{identifier}"' + (f" revision {version}" if version else ""),
        )
    fmt = params.get("format", "yang")
    if fmt.split(":")[-1] not in ("yang",):
        raise SchemaRequestError("invalid-value", f'schema format "{fmt}" is not offered (yang)')
    data = etree.Element(_Q + "data", nsmap={None: NCM})  # type: ignore[dict-item]
    data.text = info.path.read_text(encoding="utf-8")
    return data


class SchemaRequestError(Exception):
    def __init__(self, tag: str, message: str) -> None:
        super().__init__(message)
        self.error = ConfigError(
            tag, message, info=(("bad-element", "identifier"),) if tag == "invalid-value" else ()
        )
