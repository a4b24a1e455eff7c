"""ConfigError rendered as <rpc-error> (RFC 6241 §4.3)."""

from __future__ import annotations

from lxml import etree

from nf.config.errors import ConfigError
from nf.northbound.errors import rpc_error
from nf.schema import default_schema

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"


def test_all_fields_rendered_with_path_prefixes_bound() -> None:
    path = "/soip:serial-over-ip/soip:channel[soip:name='b']"
    error = ConfigError(
        "operation-failed",
        "unique constraint violated",
        path=path,
        app_tag="data-not-unique",
        info=(("non-unique", path + "/soip:serial-port"), ("bad-element", "channel")),
    )
    elem = rpc_error(error, default_schema())
    ns = {"nc": NC, "y": "urn:ietf:params:xml:ns:yang:1"}
    assert elem.findtext("nc:error-type", namespaces=ns) == "application"
    assert elem.findtext("nc:error-tag", namespaces=ns) == "operation-failed"
    assert elem.findtext("nc:error-severity", namespaces=ns) == "error"
    assert elem.findtext("nc:error-app-tag", namespaces=ns) == "data-not-unique"
    error_path = elem.find("nc:error-path", namespaces=ns)
    assert error_path is not None and error_path.text == path
    assert error_path.nsmap["soip"] == SOIP  # prefixes resolvable where they are used
    # and the path really selects the node in a document with those bindings
    doc = etree.fromstring(
        f'<serial-over-ip xmlns="{SOIP}"><channel><name>b</name></channel></serial-over-ip>'
    )
    assert len(etree.ElementTree(doc).xpath(path, namespaces=dict(error_path.nsmap))) == 1
    non_unique = elem.find("nc:error-info/y:non-unique", namespaces=ns)
    assert non_unique is not None and non_unique.nsmap["soip"] == SOIP
    assert elem.findtext("nc:error-info/nc:bad-element", namespaces=ns) == "channel"
    message = elem.find("nc:error-message", namespaces=ns)
    assert message is not None
    assert message.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"


def test_minimal_error_has_no_optional_elements() -> None:
    elem = rpc_error(ConfigError("in-use", "locked", type="protocol"), default_schema())
    names = [etree.QName(c).localname for c in elem]
    assert names == ["error-type", "error-tag", "error-severity", "error-message"]
