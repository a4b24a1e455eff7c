"""ietf-yang-library (RFC 8525) and /modules-state, as discovering clients read them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from conftest import Running
from lxml import etree

YL = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
ROOT = Path(__file__).resolve().parent.parent
NS = {"yl": YL}


def test_yang_library_lists_our_module(daemon: Running, tmp_path: Path) -> None:
    with daemon.connect() as m:
        cap = next(c for c in m.server_capabilities if "yang-library:1.1" in c)
        reply = m.get(filter=("subtree", f'<yang-library xmlns="{YL}"/>')).data_xml
    data = etree.fromstring(reply.encode())
    lib = data.find("yl:yang-library", NS)
    assert lib is not None
    content_id = lib.findtext("yl:content-id", namespaces=NS)
    assert content_id and f"content-id={content_id}" in cap
    modules = {
        m.findtext("yl:name", namespaces=NS): m.findtext("yl:revision", namespaces=NS)
        for m in lib.iterfind("yl:module-set/yl:module", NS)
    }
    assert modules["nf-serial-over-ip"] == "2026-11-23"
    imported = {
        m.findtext("yl:name", namespaces=NS)
        for m in lib.iterfind("yl:module-set/yl:import-only-module", NS)
    }
    assert {"ietf-inet-types", "ietf-yang-types"} <= imported
    names = [d.find("yl:name", NS) for d in lib.iterfind("yl:datastore", NS)]
    for name in names:  # identityref values with their prefix bound
        assert name is not None and name.text and name.text.startswith("ds:")
        assert name.nsmap.get("ds") == DS
    assert {n.text for n in names if n is not None} == {
        "ds:running",
        "ds:candidate",
        "ds:startup",
        "ds:intended",
        "ds:operational",
    }
    # yanglint builds its schema context from exactly this data (its top-level
    # elements, as libyang reads instance data) and validates our example with it
    yanglint = shutil.which("yanglint")
    assert yanglint, "yanglint (libyang2-tools) is required"
    full = m_get_all(daemon)
    lib_file = tmp_path / "yanglib.xml"
    lib_file.write_bytes(b"".join(etree.tostring(child) for child in full))
    result = subprocess.run(
        [
            yanglint,
            "-p",
            str(ROOT / "yang"),
            "-Y",
            str(lib_file),
            "-t",
            "config",
            str(ROOT / "examples" / "full.xml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def m_get_all(daemon: Running) -> list[etree._Element]:
    """/yang-library and /modules-state from one unfiltered <get>."""
    with daemon.connect() as m:
        data = etree.fromstring(m.get().data_xml.encode())
    return [e for e in data if etree.QName(e).namespace == YL]


def test_modules_state_for_older_clients(daemon: Running) -> None:
    with daemon.connect() as m:
        reply = m.get(filter=("subtree", f'<modules-state xmlns="{YL}"/>')).data_xml
    data = etree.fromstring(reply.encode())
    rows = {
        m.findtext("yl:name", namespaces=NS): m.findtext("yl:conformance-type", namespaces=NS)
        for m in data.iterfind("yl:modules-state/yl:module", NS)
    }
    assert rows["nf-serial-over-ip"] == "implement"
    assert rows["ietf-inet-types"] == "import"
