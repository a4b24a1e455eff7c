"""Every RPC and every rpc-error of the NETCONF layer, end to end.

Each test talks to an in-process daemon over real SSH with ncclient, the
client operators use, and checks what goes over the wire: error-tag,
error-type, error-app-tag, error-path and error-info (RFC 6241 §4.3,
RFC 7950 §15), and the datastores afterwards.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import DaemonFactory, Running
from lxml import etree
from ncclient.operations import RPCError
from ncclient.transport.errors import TransportError

from nf.model import RelayConfig
from nf.runtime.transaction import (
    ChannelState,
    Delta,
    Fault,
    PrepareError,
    Snapshot,
    Transaction,
)

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
YANG = "urn:ietf:params:xml:ns:yang:1"
NS = {"nc": NC, "s": SOIP}

TOP = "/soip:serial-over-ip"
DEMO = f"{TOP}/soip:channel[soip:name='demo']"


def channel_path(name: str) -> str:
    return f"{TOP}/soip:channel[soip:name='{name}']"


def config(body: str, **attrs: str) -> str:
    """A <config> for edit-config with ``body`` inside <serial-over-ip>."""
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    return (
        f'<config xmlns="{NC}" xmlns:nc="{NC}"><serial-over-ip xmlns="{SOIP}"{extra}>'
        f"{body}</serial-over-ip></config>"
    )


def port(name: str) -> str:
    return f"<serial-port><name>{name}</name><device>loop://</device></serial-port>"


def server(name: str, tcp: int, serial: str | None = None, extra: str = "") -> str:
    return (
        f"<channel><name>{name}</name><serial-port>{serial or name}</serial-port>"
        f"<mode>server</mode><listen><address>127.0.0.1</address><port>{tcp}</port></listen>"
        f"{extra}</channel>"
    )


def rpc_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> RPCError:
    with pytest.raises(RPCError) as caught:
        call(*args, **kwargs)
    return caught.value


def errors_of(error: RPCError) -> list[RPCError]:
    return list(error.errlist) if error.errlist else [error]


def info(error: RPCError) -> dict[str, str]:
    """error-info children by local name."""
    assert error.info is not None, f"no error-info in {error.to_dict()}"
    return {etree.QName(c).localname: (c.text or "") for c in etree.fromstring(error.info.encode())}


def check(
    error: RPCError,
    tag: str,
    type_: str,
    *,
    path: str | None = None,
    app_tag: str | None = None,
    **expected_info: str,
) -> None:
    assert error.errlist is None, [e.to_dict() for e in error.errlist]
    assert (error.tag, error.type, error.severity) == (tag, type_, "error"), error.to_dict()
    assert error.app_tag == app_tag, error.to_dict()
    assert error.path == path, error.to_dict()
    assert error.message, error.to_dict()
    got = info(error) if expected_info or error.info else {}
    assert got == {k.replace("_", "-"): v for k, v in expected_info.items()}


def data(reply: Any) -> etree._Element:
    elem = reply.data_ele
    assert etree.QName(elem).localname == "data"
    return elem


def texts(reply: Any, xpath: str) -> list[str]:
    """XPath relative to <data> ("//" means anywhere below it)."""
    xpath = "." + xpath if xpath.startswith("//") else xpath
    return [str(t) for t in data(reply).xpath(xpath, namespaces=NS)]


def channels(m: Any, source: str = "running") -> list[str]:
    return texts(m.get_config(source), "s:serial-over-ip/s:channel/s:name/text()")


def keepalive(m: Any, source: str = "running") -> list[str]:
    return texts(
        m.get_config(source),
        "s:serial-over-ip/s:channel[s:name='demo']/s:keepalive/text()",
    )


def set_keepalive(value: int | str, **attrs: str) -> str:
    return config(f"<channel><name>demo</name><keepalive>{value}</keepalive></channel>", **attrs)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"


def session_ids(m: Any) -> list[str]:
    """The session-ids /netconf-state/sessions lists (RFC 6022)."""
    data = m.get(("subtree", f'<netconf-state xmlns="{NCM}"><sessions/></netconf-state>')).data_ele
    return [str(t) for t in data.xpath("//m:session/m:session-id/text()", namespaces={"m": NCM})]


# -- a runtime that reports state, records applies and can refuse a channel ----------


class FakeRuntime:
    """nf.runtime.transaction.Runtime for tests.

    ``prepare`` refuses (PrepareError naming the channel) the creation of a
    channel called ``boom``; otherwise its transaction records ``apply``.
    ``state`` reports every applied channel as listening, with a counter.
    """

    def __init__(self, refuse_tag: str = "resource-denied") -> None:
        self.refuse_tag = refuse_tag
        self.config = RelayConfig({}, {})
        self.document: bytes | None = None
        self.prepared: list[set[str]] = []
        self.applied: list[set[str]] = []
        self.aborted = 0
        self.cleared: list[str | None] = []
        self.snapshots: list[frozenset[str] | None] = []
        """The channels each snapshot was asked for (None: all)."""

    def add_event_sink(self, sink: object) -> None:
        del sink  # this runtime has no events

    async def prepare(self, delta: Delta, document: bytes, boot: bool = False) -> Transaction:
        names = set(delta.channels)
        self.prepared.append(names)
        if "boom" in delta.channels and "boom" not in self.config.channels:
            raise PrepareError(
                [
                    Fault(
                        self.refuse_tag,
                        "cannot open serial port: device busy",
                        "boom",
                        "serial-port",
                    )
                ]
            )
        runtime = self

        class _Transaction:
            async def apply(self) -> None:
                runtime.applied.append(names)
                runtime.config = delta.applied_to(runtime.config)
                runtime.document = document

            async def abort(self) -> None:
                runtime.aborted += 1

        return _Transaction()

    async def running(self) -> tuple[RelayConfig, bytes] | None:
        return None if self.document is None else (self.config, self.document)

    async def snapshot(self, channels: frozenset[str] | None = None) -> Snapshot:
        self.snapshots.append(channels)
        return Snapshot(
            channels=tuple(
                ChannelState(name, "listening", None, (), (("serial-to-net-bytes", 42),))
                for name in self.config.channels
                if channels is None or name in channels
            )
        )

    async def clear_counters(self, channel: str | None) -> None:
        self.cleared.append(channel)


@pytest.fixture
def fake(make_daemon: DaemonFactory) -> tuple[Running, FakeRuntime]:
    runtime = FakeRuntime()
    return make_daemon(runtime=runtime), runtime


# -- get and get-config, filters ---------------------------------------------------------


def test_get_merges_config_and_state_and_filters_both(fake: tuple[Running, FakeRuntime]) -> None:
    daemon, _ = fake
    with daemon.connect() as m:
        everything = m.get()
        demo = "s:serial-over-ip/s:channel[s:name='demo']"
        assert texts(everything, f"{demo}/s:serial-port/text()") == ["demo"]
        assert texts(everything, f"{demo}/s:state/s:oper-status/text()") == ["listening"]
        assert texts(everything, "s:serial-over-ip/s:serial-port/s:device/text()") == ["loop://"]
        assert texts(m.get_config("running"), "//s:state") == []  # get-config: no state
        # subtree: a state leaf of one channel; the entry keeps its key
        subtree = m.get(
            filter=(
                "subtree",
                f'<serial-over-ip xmlns="{SOIP}"><channel><name>demo</name>'
                "<state><counters><serial-to-net-bytes/></counters></state></channel>"
                "</serial-over-ip>",
            )
        )
        assert [etree.QName(e).localname for e in data(subtree).iter()] == [
            "data",
            "serial-over-ip",
            "channel",
            "name",
            "state",
            "counters",
            "serial-to-net-bytes",
        ]
        assert texts(subtree, "//s:serial-to-net-bytes/text()") == ["42"]
        # XPath as ncclient sends it: unqualified type/select, prefixes bound
        # on <filter> by the (nsmap, select) form
        xpath = m.get(filter=("xpath", ({"soip": SOIP}, f"{DEMO}/soip:state/soip:oper-status")))
        assert [etree.QName(e).localname for e in data(xpath).iter()] == [
            "data",
            "serial-over-ip",
            "channel",
            "name",
            "state",
            "oper-status",
        ]
        assert texts(xpath, "//s:oper-status/text()") == ["listening"]


CHANNEL_C1_STATE = "<channel><name>c1</name><state/></channel>"


def test_a_get_filtered_by_key_reads_the_state_of_that_channel_only(
    fake: tuple[Running, FakeRuntime],
) -> None:
    """The work a filtered <get> does follows the filter: one channel's
    state is asked of the data plane, not every channel's (a <get> of
    one channel among 10 000 took 1.2 s when it read them all)."""
    daemon, runtime = fake
    with daemon.connect() as m:
        m.edit_config(
            target="candidate",
            config=config(
                "".join(port(f"p{i}") for i in range(5))
                + "".join(server(f"c{i}", 9000 + i, serial=f"p{i}") for i in range(5))
            ),
        )
        m.commit()
        runtime.snapshots.clear()
        one = m.get(
            filter=(
                "xpath",
                ({"soip": SOIP}, "/soip:serial-over-ip/soip:channel[soip:name='c3']/soip:state"),
            )
        )
        assert texts(one, "//s:channel/s:name/text()") == ["c3"]
        assert texts(one, "//s:oper-status/text()") == ["listening"]
        sub = m.get(
            filter=(
                "subtree",
                f'<serial-over-ip xmlns="{SOIP}">{CHANNEL_C1_STATE}</serial-over-ip>',
            )
        )
        assert texts(sub, "//s:channel/s:name/text()") == ["c1"]
        monitoring = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
        both = m.get(
            filter=etree.fromstring(
                f'<filter xmlns="{NC}" type="subtree">'
                f'<serial-over-ip xmlns="{SOIP}">{CHANNEL_C1_STATE}</serial-over-ip>'
                f'<netconf-state xmlns="{monitoring}"><sessions/></netconf-state></filter>'
            )
        )
        assert texts(both, "//s:channel/s:name/text()") == ["c1"]
        assert both.data.xpath("//m:session", namespaces={"m": monitoring})  # other state kept
        everything = m.get()
        assert len(texts(everything, "//s:channel/s:state/s:oper-status/text()")) == 6
        assert runtime.snapshots == [frozenset({"c3"}), frozenset({"c1"}), frozenset({"c1"}), None]


def test_get_config_filters_on_running_and_candidate(daemon: Running) -> None:
    with daemon.connect() as m:
        m.edit_config(target="candidate", config=set_keepalive(5))
        select = ("xpath", ({"soip": SOIP}, f"{DEMO}/soip:keepalive"))
        running = m.get_config("running", filter=select)
        candidate = m.get_config("candidate", filter=select)
        # config only, no defaults added and no state
        assert texts(running, "//s:keepalive") == []
        assert [etree.QName(e).localname for e in data(running).iter()] == ["data"]
        assert texts(candidate, "//s:keepalive/text()") == ["5"]
        subtree = m.get_config(
            "candidate",
            filter=(
                "subtree",
                f'<serial-over-ip xmlns="{SOIP}"><serial-port><device/></serial-port>'
                "</serial-over-ip>",
            ),
        )
        assert [etree.QName(e).localname for e in data(subtree).iter()] == [
            "data",
            "serial-over-ip",
            "serial-port",
            "name",
            "device",
        ]


def test_xpath_filter_without_select_is_missing_attribute(daemon: Running) -> None:
    with daemon.connect() as m:
        no_select = etree.Element(f"{{{NC}}}filter", type="xpath")
        error = rpc_error(m.get_config, "running", filter=no_select)
        check(error, "missing-attribute", "protocol", bad_attribute="select", bad_element="filter")
        error = rpc_error(m.get, filter=etree.Element(f"{{{NC}}}filter", type="regex"))
        check(error, "bad-attribute", "protocol", bad_attribute="type", bad_element="filter")


def test_get_config_of_unknown_datastore(daemon: Running) -> None:
    with daemon.connect() as m:
        rpc = etree.fromstring(
            f'<get-config xmlns="{NC}"><source><operational/></source></get-config>'
        )
        check(rpc_error(m.dispatch, rpc), "bad-element", "protocol", bad_element="operational")


# -- edit-config: targets, default-operation, test-option, error-option -----------------


def test_edit_running_directly_and_candidate_then_commit(daemon: Running) -> None:
    with daemon.connect() as m:
        m.edit_config(target="running", config=set_keepalive(7))
        assert keepalive(m, "running") == ["7"]
        assert keepalive(m, "candidate") == ["7"]  # an unmodified candidate follows
        m.edit_config(target="candidate", config=set_keepalive(8))
        assert keepalive(m, "running") == ["7"]
        m.commit()
        assert keepalive(m, "running") == ["8"]


def test_default_operation_merge_replace_none(daemon: Running) -> None:
    with daemon.connect() as m:
        m.edit_config(target="candidate", config=set_keepalive(9), default_operation="merge")
        conf = m.get_config("candidate")
        assert texts(conf, "//s:channel/s:description/text()")  # merge keeps the rest
        # none: nothing changes except where an operation says so
        m.edit_config(
            target="candidate",
            default_operation="none",
            config=config(
                "<channel><name>demo</name><keepalive nc:operation='merge'>11</keepalive>"
                "<takeover>true</takeover></channel>"
            ),
        )
        conf = m.get_config("candidate")
        assert texts(conf, "//s:keepalive/text()") == ["11"]
        assert texts(conf, "//s:takeover") == []
        # none with a level that does not exist in the target: data-missing
        error = rpc_error(
            m.edit_config,
            target="candidate",
            default_operation="none",
            config=config("<channel><name>nope</name><keepalive>1</keepalive></channel>"),
        )
        check(
            error,
            "data-missing",
            "application",
            path=channel_path("nope"),
            bad_element="channel",
        )
        # replace: the datastore becomes exactly <config>
        m.edit_config(
            target="candidate",
            default_operation="replace",
            config=config(port("demo") + server("demo", 8301)),
        )
        conf = m.get_config("candidate")
        assert texts(conf, "//s:description") == []
        assert texts(conf, "//s:keepalive") == []
        assert texts(conf, "//s:channel/s:listen/s:port/text()") == ["8301"]


def test_test_only_changes_nothing(daemon: Running) -> None:
    with daemon.connect() as m:
        for target in ("running", "candidate"):
            m.edit_config(target=target, config=set_keepalive(3), test_option="test-only")
            error = rpc_error(
                m.edit_config, target=target, config=set_keepalive(70000), test_option="test-only"
            )
            check(
                error,
                "invalid-value",
                "application",
                path=f"{DEMO}/soip:keepalive",
                bad_element="keepalive",
            )
        assert keepalive(m, "running") == keepalive(m, "candidate") == []


def test_test_then_set_refuses_invalid_value_with_error_path(daemon: Running) -> None:
    with daemon.connect() as m:
        for target in ("candidate", "running"):
            error = rpc_error(
                m.edit_config,
                target=target,
                config=set_keepalive("many"),
                test_option="test-then-set",
            )
            check(
                error,
                "invalid-value",
                "application",
                path=f"{DEMO}/soip:keepalive",
                bad_element="keepalive",
            )
            assert keepalive(m, target) == []


def test_set_allows_invalid_candidate_that_commit_refuses(daemon: Running) -> None:
    with daemon.connect() as m:
        m.edit_config(
            target="candidate",
            test_option="set",
            config=config("<channel><name>demo</name><serial-port>ghost</serial-port></channel>"),
        )
        assert texts(m.get_config("candidate"), "//s:channel/s:serial-port/text()") == ["ghost"]
        check(
            rpc_error(m.validate, source="candidate"),
            "data-missing",
            "application",
            path=f"{DEMO}/soip:serial-port",
            app_tag="instance-required",
        )
        error = rpc_error(m.commit)
        check(
            error,
            "data-missing",
            "application",
            path=f"{DEMO}/soip:serial-port",
            app_tag="instance-required",
        )
        assert texts(m.get_config("running"), "//s:channel/s:serial-port/text()") == ["demo"]
        # test-option set does not make running invalid either
        error = rpc_error(
            m.edit_config,
            target="running",
            test_option="set",
            config=config("<channel><name>demo</name><serial-port>ghost</serial-port></channel>"),
        )
        assert error.tag == "data-missing" and error.app_tag == "instance-required"


def _bad_and_good() -> str:
    """Two good changes (a new port, keepalive) and one error (create of an
    existing serial port)."""
    return config(
        port("extra")
        + "<channel><name>demo</name><keepalive>12</keepalive></channel>"
        + "<serial-port nc:operation='create'><name>demo</name><device>loop://</device>"
        "</serial-port>"
    )


def test_error_option_stop_rollback_continue(daemon: Running) -> None:
    with daemon.connect() as m:
        for target in ("candidate", "running"):
            for option in ("stop-on-error", "rollback-on-error"):
                error = rpc_error(
                    m.edit_config, target=target, config=_bad_and_good(), error_option=option
                )
                check(
                    error,
                    "data-exists",
                    "application",
                    path=f"{TOP}/soip:serial-port[soip:name='demo']",
                    bad_element="serial-port",
                )
                assert keepalive(m, target) == []  # all or nothing
                assert "extra" not in texts(m.get_config(target), "//s:serial-port/s:name/text()")
        # continue-on-error: the error is reported, the rest is applied
        error = rpc_error(
            m.edit_config,
            target="candidate",
            config=_bad_and_good(),
            error_option="continue-on-error",
        )
        assert error.tag == "data-exists"
        assert keepalive(m, "candidate") == ["12"]
        names = texts(m.get_config("candidate"), "//s:serial-port/s:name/text()")
        assert names == ["demo", "extra"]
        error = rpc_error(
            m.edit_config,
            target="running",
            config=_bad_and_good(),
            error_option="continue-on-error",
        )
        assert error.tag == "data-exists"
        assert keepalive(m, "running") == ["12"]


# -- edit-config errors -------------------------------------------------------------------


def test_create_existing_delete_missing_remove_missing(daemon: Running) -> None:
    with daemon.connect() as m:
        check(
            rpc_error(
                m.edit_config,
                target="running",
                config=config("<channel nc:operation='create'><name>demo</name></channel>"),
            ),
            "data-exists",
            "application",
            path=DEMO,
            bad_element="channel",
        )
        check(
            rpc_error(
                m.edit_config,
                target="running",
                config=config("<channel nc:operation='delete'><name>nope</name></channel>"),
            ),
            "data-missing",
            "application",
            path=channel_path("nope"),
            bad_element="channel",
        )
        check(
            rpc_error(
                m.edit_config,
                target="candidate",
                config=config(
                    "<channel><name>demo</name><keepalive nc:operation='delete'/></channel>"
                ),
            ),
            "data-missing",
            "application",
            path=f"{DEMO}/soip:keepalive",
            bad_element="keepalive",
        )
        m.edit_config(
            target="running",
            config=config("<channel nc:operation='remove'><name>nope</name></channel>"),
        )
        m.edit_config(
            target="running",
            config=config("<channel><name>demo</name><takeover nc:operation='remove'/></channel>"),
        )
        # delete of an existing node works
        m.edit_config(
            target="running",
            config=config("<channel nc:operation='delete'><name>demo</name></channel>"),
        )
        assert channels(m) == []


def test_unknown_element_and_unknown_namespace(daemon: Running) -> None:
    with daemon.connect() as m:
        check(
            rpc_error(
                m.edit_config,
                target="candidate",
                config=config("<channel><name>demo</name><colour>red</colour></channel>"),
            ),
            "unknown-element",
            "application",
            path=DEMO,
            bad_element="colour",
        )
        error = rpc_error(
            m.edit_config,
            target="candidate",
            config=f'<config xmlns="{NC}"><serial-over-ip xmlns="urn:example:other"/></config>',
        )
        check(
            error,
            "unknown-namespace",
            "protocol",
            path="/",
            bad_element="serial-over-ip",
            bad_namespace="urn:example:other",
        )


def test_bad_operation_attribute(daemon: Running) -> None:
    with daemon.connect() as m:
        error = rpc_error(
            m.edit_config,
            target="candidate",
            config=config("<channel nc:operation='frobnicate'><name>demo</name></channel>"),
        )
        check(
            error,
            "bad-attribute",
            "protocol",
            path=DEMO,
            bad_attribute="operation",
            bad_element="channel",
        )


def test_invalid_value_range_and_pattern(daemon: Running) -> None:
    with daemon.connect() as m:
        check(
            rpc_error(
                m.edit_config,
                target="candidate",
                config=config(
                    "<serial-port><name>demo</name><baud-rate>10</baud-rate></serial-port>"
                ),
            ),
            "invalid-value",
            "application",
            path=f"{TOP}/soip:serial-port[soip:name='demo']/soip:baud-rate",
            bad_element="baud-rate",
        )
        error = rpc_error(
            m.edit_config,
            target="candidate",
            config=config("<serial-port><name>demo</name><device>ttyS0</device></serial-port>"),
        )
        assert error.tag == "invalid-value" and error.type == "application"
        assert error.path == f"{TOP}/soip:serial-port[soip:name='demo']/soip:device"
        assert info(error) == {"bad-element": "device"}


def test_must_violation_two_servers_on_one_port(daemon: Running) -> None:
    """RFC 7950 §8.3.3: the candidate takes the edit; validate and commit
    report the must violation, and running is untouched."""
    with daemon.connect() as m:
        m.edit_config(target="candidate", config=config(port("two") + server("two", 8301)))
        assert channels(m, "candidate") == ["demo", "two"]
        for operation in (lambda: m.validate(source="candidate"), m.commit):
            found = errors_of(rpc_error(operation))
            assert {e.path for e in found} == {DEMO, channel_path("two")}
            for e in found:
                assert (e.tag, e.type, e.app_tag) == (
                    "operation-failed",
                    "application",
                    "must-violation",
                )
                assert "listen/port is used by another enabled TCP server channel" in e.message
        assert channels(m, "running") == ["demo"]


def test_data_not_unique_two_channels_one_serial_port(daemon: Running) -> None:
    with daemon.connect() as m:
        error = rpc_error(
            m.edit_config, target="running", config=config(server("two", 8302, serial="demo"))
        )
        assert error.errlist is None
        assert (error.tag, error.type, error.app_tag) == (
            "operation-failed",
            "application",
            "data-not-unique",
        )
        assert error.path == channel_path("two")  # the entry the edit adds
        non_unique = etree.fromstring(error.info.encode()).findall(f"{{{YANG}}}non-unique")
        assert [n.text for n in non_unique] == [
            f"{DEMO}/soip:serial-port",
            f"{channel_path('two')}/soip:serial-port",
        ]
        assert all(n.nsmap.get("soip") == SOIP for n in non_unique)
        assert channels(m) == ["demo"]


def test_leafref_instance_required_and_mandatory_leaf(daemon: Running) -> None:
    with daemon.connect() as m:
        error = rpc_error(
            m.edit_config,
            target="running",
            config=config(
                "<channel><name>two</name><mode>server</mode><listen><port>9</port></listen>"
                "</channel>"
            ),
        )
        check(
            error,
            "missing-element",
            "application",
            path=f"{channel_path('two')}/soip:serial-port",
            bad_element="serial-port",
        )
        error = rpc_error(
            m.edit_config, target="running", config=config(server("two", 8302, serial="ghost"))
        )
        check(
            error,
            "data-missing",
            "application",
            path=f"{channel_path('two')}/soip:serial-port",
            app_tag="instance-required",
        )


def test_too_many_destinations(daemon: Running) -> None:
    destinations = "".join(
        f"<destination><address>192.0.2.{i}</address><port>9000</port></destination>"
        for i in range(1, 18)
    )
    peer = (
        "<channel><name>peer</name><serial-port>peer</serial-port><mode>peer</mode>"
        f"<listen><port>9000</port></listen>{destinations}</channel>"
    )
    with daemon.connect() as m:
        m.edit_config(target="candidate", config=config(port("peer") + peer))  # §8.3.3
        error = rpc_error(m.validate, source="candidate")
        assert error.errlist is None
        assert (error.tag, error.type, error.app_tag) == (
            "operation-failed",
            "application",
            "too-many-elements",
        )
        assert error.path == f"{channel_path('peer')}/soip:destination"
        assert error.info is None


def test_state_data_in_config_is_refused(daemon: Running) -> None:
    with daemon.connect() as m:
        error = rpc_error(
            m.edit_config,
            target="running",
            config=config(
                "<channel><name>demo</name><state><oper-status>up</oper-status></state></channel>"
            ),
        )
        check(
            error,
            "invalid-value",
            "application",
            path=f"{DEMO}/soip:state",
            bad_element="state",
        )


# -- validate, commit, discard-changes ----------------------------------------------------


def test_validate_datastores_and_inline_config(daemon: Running) -> None:
    with daemon.connect() as m:
        m.validate(source="candidate")
        m.validate(source="running")
        m.validate(source=etree.fromstring(config(port("demo") + server("demo", 8301))))
        error = rpc_error(
            m.validate, source=etree.fromstring(config(server("demo", 8301, serial="ghost")))
        )
        check(
            error,
            "data-missing",
            "application",
            path=f"{DEMO}/soip:serial-port",
            app_tag="instance-required",
        )
        error = rpc_error(m.validate, source=etree.fromstring(config(port("demo") + "<colour/>")))
        check(error, "unknown-element", "application", path=TOP, bad_element="colour")


def test_failed_commit_changes_nothing_and_discard_changes(daemon: Running) -> None:
    with daemon.connect() as m:
        m.edit_config(
            target="candidate",
            test_option="set",
            config=config(
                port("two") + server("two", 8301) + "<channel><name>demo</name>"
                "<keepalive>1</keepalive></channel>"
            ),
        )
        error = rpc_error(m.commit)
        assert {e.app_tag for e in errors_of(error)} == {"must-violation"}
        assert channels(m) == ["demo"]
        assert keepalive(m) == []
        m.discard_changes()
        assert channels(m, "candidate") == ["demo"]
        assert keepalive(m, "candidate") == []
        m.commit()  # nothing to commit is fine


# -- copy-config, delete-config -----------------------------------------------------------


def test_copy_config(daemon: Running) -> None:
    with daemon.connect() as m:
        m.edit_config(target="candidate", config=set_keepalive(4))
        m.copy_config(source="running", target="candidate")
        assert keepalive(m, "candidate") == []
        m.edit_config(target="candidate", config=set_keepalive(4))
        m.copy_config(source="candidate", target="running")
        assert keepalive(m, "running") == ["4"]
        inline = etree.Element(f"{{{NC}}}source")
        inline.append(etree.fromstring(config(port("p") + server("q", 8400, serial="p"))))
        m.copy_config(source=inline, target="running")
        assert channels(m) == ["q"]
        assert channels(m, "candidate") == ["q"]
        check(
            rpc_error(m.copy_config, source="running", target="running"),
            "invalid-value",
            "protocol",
            bad_element="target",
        )
        bad = etree.Element(f"{{{NC}}}source")
        bad.append(etree.fromstring(config(server("q", 8400, serial="nope"))))
        error = rpc_error(m.copy_config, source=bad, target="running")
        assert error.tag == "data-missing" and error.app_tag == "instance-required"
        assert channels(m) == ["q"]


def test_delete_config(daemon: Running) -> None:
    with daemon.connect() as m:
        check(
            rpc_error(m.delete_config, target="running"),
            "operation-not-supported",
            "protocol",
            bad_element="target",
        )
        assert channels(m) == ["demo"]


# -- locks and sessions (RFC 6241 §7.5-§7.9, §8.3.5) -------------------------------------


def test_lock_denied_names_holder_and_in_use_for_others(daemon: Running) -> None:
    with daemon.connect() as a, daemon.connect() as b:
        a.lock("running")
        a.lock("candidate")
        for target in ("running", "candidate"):
            check(
                rpc_error(b.lock, target),
                "lock-denied",
                "protocol",
                session_id=a.session_id,
            )
            check(
                rpc_error(b.edit_config, target=target, config=set_keepalive(1)),
                "in-use",
                "protocol",
                session_id=a.session_id,
            )
            check(
                rpc_error(
                    b.copy_config,
                    source="running" if target == "candidate" else "candidate",
                    target=target,
                ),
                "in-use",
                "protocol",
                session_id=a.session_id,
            )
        check(rpc_error(b.commit), "in-use", "protocol", session_id=a.session_id)
        check(rpc_error(b.discard_changes), "in-use", "protocol", session_id=a.session_id)
        # the holder's own edits go through
        a.edit_config(target="running", config=set_keepalive(2))
        check(
            rpc_error(b.unlock, "running"),
            "operation-failed",
            "protocol",
            session_id=a.session_id,
        )
        assert keepalive(b) == ["2"]  # reading is not blocked
        a.unlock("running")
        a.unlock("candidate")
        check(rpc_error(a.unlock, "running"), "operation-failed", "protocol")
        b.edit_config(target="running", config=set_keepalive(3))


def test_lock_on_modified_candidate_is_denied(daemon: Running) -> None:
    with daemon.connect() as a, daemon.connect() as b:
        a.edit_config(target="candidate", config=set_keepalive(5))
        for m in (a, b):
            check(rpc_error(m.lock, "candidate"), "lock-denied", "protocol", session_id="0")
        b.lock("running")  # running is not affected


def test_unlocking_candidate_discards_the_holders_changes(daemon: Running) -> None:
    with daemon.connect() as m:
        m.lock("candidate")
        m.edit_config(target="candidate", config=set_keepalive(6))
        assert keepalive(m, "candidate") == ["6"]
        m.unlock("candidate")
        assert keepalive(m, "candidate") == []
        # committed changes stay
        m.lock("candidate")
        m.edit_config(target="candidate", config=set_keepalive(6))
        m.commit()
        m.unlock("candidate")
        assert keepalive(m, "candidate") == keepalive(m, "running") == ["6"]


def test_locks_released_on_close_session(daemon: Running) -> None:
    with daemon.connect() as b:
        a = daemon.connect()
        a.lock("running")
        a.lock("candidate")
        a.edit_config(target="candidate", config=set_keepalive(6))
        # close-session by hand: ncclient's close_session() also tears the
        # transport down before returning, which would hide a late release
        assert a.dispatch(etree.Element(f"{{{NC}}}close-session")).ok
        # released before the reply (RFC 6241 §7.8): no wait needed
        b.lock("running")
        b.lock("candidate")  # and the candidate changes were discarded
        assert keepalive(b, "candidate") == []
        wait_until(lambda: not a.connected)


def test_locks_released_on_transport_loss(daemon: Running) -> None:
    with daemon.connect() as b:
        a = daemon.connect()
        a.lock("running")
        a.lock("candidate")
        a.edit_config(target="candidate", config=set_keepalive(6))
        # the TCP connection breaks: no close-session, no SSH disconnect
        sock = a._session._transport.sock
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()

        def free() -> bool:
            try:
                b.lock("running")
            except RPCError as exc:
                assert exc.tag == "lock-denied"
                return False
            return True

        wait_until(free)
        b.lock("candidate")
        assert keepalive(b, "candidate") == []
        a._session.close()


def test_kill_session(daemon: Running) -> None:
    b = daemon.connect()
    with daemon.connect() as a:
        check(
            rpc_error(a.kill_session, a.session_id),
            "invalid-value",
            "protocol",
            bad_element="session-id",
        )
        check(
            rpc_error(a.kill_session, "4711"),
            "invalid-value",
            "protocol",
            bad_element="session-id",
        )
        b.lock("candidate")
        b.lock("running")
        b.edit_config(target="candidate", config=set_keepalive(6))
        assert str(b.session_id) in session_ids(a)
        a.kill_session(b.session_id)
        # the locks are free as soon as kill-session has answered
        a.lock("running")
        a.lock("candidate")
        assert keepalive(a, "candidate") == []
        # and the killed session is really gone
        wait_until(lambda: not b.connected)
        with pytest.raises(TransportError):
            b.get_config("running")
        # the server ends it in the background (Session.close_in_background):
        # once it is out of /netconf-state/sessions it cannot be killed again
        wait_until(lambda: str(b.session_id) not in session_ids(a))
        check(
            rpc_error(a.kill_session, b.session_id),
            "invalid-value",
            "protocol",
            bad_element="session-id",
        )


# -- module RPCs, unknown RPCs ---------------------------------------------------------


def test_clear_counters(fake: tuple[Running, FakeRuntime]) -> None:
    daemon, runtime = fake
    with daemon.connect() as m:
        one = etree.Element(f"{{{SOIP}}}clear-counters")
        etree.SubElement(one, f"{{{SOIP}}}channel").text = "demo"
        assert m.dispatch(one).ok
        assert m.dispatch(etree.Element(f"{{{SOIP}}}clear-counters")).ok
        assert runtime.cleared == ["demo", None]
        one[0].text = "nope"
        check(
            rpc_error(m.dispatch, one),
            "data-missing",
            "application",
            path="/soip:clear-counters/soip:channel",
            app_tag="instance-required",
            bad_element="channel",
        )
        assert runtime.cleared == ["demo", None]


def test_unknown_operations(daemon: Running) -> None:
    with daemon.connect() as m:
        check(
            rpc_error(m.dispatch, etree.Element(f"{{{NC}}}reboot-everything")),
            "operation-not-supported",
            "protocol",
            bad_element="reboot-everything",
        )
        check(
            rpc_error(m.dispatch, etree.Element("{urn:example:other}reboot")),
            "unknown-namespace",
            "protocol",
            bad_element="reboot",
            bad_namespace="urn:example:other",
        )
        m.get_config("running")  # the session goes on


# -- runtime prepare failure (issue 3 item 8) ------------------------------------------


@pytest.mark.parametrize("tag", ["resource-denied", "operation-failed"])
def test_prepare_failure_changes_nothing(make_daemon: DaemonFactory, tag: str) -> None:
    runtime = FakeRuntime(refuse_tag=tag)
    daemon = make_daemon(runtime=runtime)
    assert runtime.applied == [{"demo"}]  # the boot configuration
    with daemon.connect() as m:
        before = m.get_config("running").data_xml
        m.edit_config(
            target="candidate",
            config=config(port("boom") + server("boom", 8302) + port("ok") + server("ok", 8303)),
        )
        error = rpc_error(m.commit)
        check(
            error,
            tag,
            "application",
            path=channel_path("boom") + "/soip:serial-port",
        )
        assert error.message == "cannot open serial port: device busy"
        assert m.get_config("running").data_xml == before
        assert runtime.prepared[-1] == {"boom", "ok"}
        assert runtime.applied == [{"demo"}]  # apply never called for the failed commit
        assert channels(m, "candidate") == ["demo", "boom", "ok"]  # the candidate is kept
        # the same on running directly
        error = rpc_error(
            m.edit_config, target="running", config=config(port("boom") + server("boom", 8302))
        )
        assert (error.tag, error.path) == (tag, channel_path("boom") + "/soip:serial-port")
        assert m.get_config("running").data_xml == before
        # a good commit goes through
        m.edit_config(
            target="candidate",
            config=config("<channel nc:operation='delete'><name>boom</name></channel>"),
        )
        m.commit()
        assert runtime.applied == [{"demo"}, {"ok"}]
        assert channels(m) == ["demo", "ok"]
