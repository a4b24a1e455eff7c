"""ietf-yang-library (RFC 8525), and the RFC 7895 /modules-state older
clients still read: which modules, revisions and features this server
implements, so clients that discover modules (ncclient, NSO, yanglint's
--yang-library) see ours.

The content is fixed for the life of the process (the schema is compiled
at start-up), so it is built once; ``content-id`` is a hash of it and
changes only when the module set does.
"""

from __future__ import annotations

import hashlib

from lxml import etree

from nf.config.codec import parse
from nf.config.tree import Node
from nf.schema import SchemaIndex

YANGLIB = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
_Q = f"{{{YANGLIB}}}"
MODULE_SET = "all"


def content_id(schema: SchemaIndex) -> str:
    parts = sorted(
        f"{m.name}@{m.revision}:{m.implemented}:{','.join(m.features)}"
        for m in schema.modules.values()
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def capability(schema: SchemaIndex) -> str:
    """The :yang-library:1.1 capability with revision and content-id (RFC 8526 §2)."""
    return (
        "urn:ietf:params:netconf:capability:yang-library:1.1"
        f"?revision=2019-01-04&content-id={content_id(schema)}"
    )


def _leaf(parent: etree._Element, name: str, value: str) -> None:
    etree.SubElement(parent, _Q + name).text = value


def state_tree(schema: SchemaIndex, datastores: list[str]) -> Node:
    holder = etree.Element("data")
    lib = etree.SubElement(holder, _Q + "yang-library", nsmap={None: YANGLIB})  # type: ignore[dict-item]
    module_set = etree.SubElement(lib, _Q + "module-set")
    _leaf(module_set, "name", MODULE_SET)
    modules = sorted(schema.modules.values(), key=lambda m: m.name)
    for info in (m for m in modules if m.implemented):
        module = etree.SubElement(module_set, _Q + "module")
        _leaf(module, "name", info.name)
        if info.revision:
            _leaf(module, "revision", info.revision)
        _leaf(module, "namespace", info.namespace)
        for feature in info.features:
            _leaf(module, "feature", feature)
    for info in (m for m in modules if not m.implemented):
        imported = etree.SubElement(module_set, _Q + "import-only-module")
        _leaf(imported, "name", info.name)
        _leaf(imported, "revision", info.revision or "")
        _leaf(imported, "namespace", info.namespace)
    schema_entry = etree.SubElement(lib, _Q + "schema")
    _leaf(schema_entry, "name", "all")
    _leaf(schema_entry, "module-set", MODULE_SET)
    for name in datastores:
        ds = etree.SubElement(lib, _Q + "datastore")
        _leaf(ds, "name", f"ds:{name}")
        _leaf(ds, "schema", "all")
    _leaf(lib, "content-id", content_id(schema))
    legacy = etree.SubElement(holder, _Q + "modules-state", nsmap={None: YANGLIB})  # type: ignore[dict-item]
    _leaf(legacy, "module-set-id", content_id(schema))
    for info in modules:
        module = etree.SubElement(legacy, _Q + "module")
        _leaf(module, "name", info.name)
        _leaf(module, "revision", info.revision or "")
        _leaf(module, "namespace", info.namespace)
        for feature in info.features:
            _leaf(module, "feature", feature)
        _leaf(module, "conformance-type", "implement" if info.implemented else "import")
    tree, errors = parse(holder, schema, allow_state=True)
    if errors:  # our own output must fit the module; a failure is a bug
        raise AssertionError(f"yang-library does not fit ietf-yang-library: {errors}")
    return tree
