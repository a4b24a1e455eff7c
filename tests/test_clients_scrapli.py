"""scrapli-netconf against the daemon, through both of its SSH transports.

scrapli-netconf writes a newline before the XML declaration of its hello
and its rpcs, and its default ``system`` transport runs OpenSSH as
``ssh -tt -s netconf`` (a terminal, so that ssh prompts for the password
on it); the server must take both.  Each operation is checked by what it
did, not only by scrapli calling it a success.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from conftest import Running
from lxml import etree
from ncclient.operations import RPCError
from scrapli_netconf.driver import NetconfDriver
from scrapli_netconf.response import NetconfResponse

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
TIMEOUT = 20

# scrapli times its operations with SIGALRM and cancels the timer when one
# ends, which also cancels pytest-timeout's signal-based limit (and
# scrapli's own outer one): a server that stops answering would hang the
# suite.  The thread method needs no signal.
pytestmark = pytest.mark.timeout(60, method="thread")


@pytest.fixture(params=["paramiko", "system"])
def scrapli(request: pytest.FixtureRequest, daemon: Running) -> Iterator[NetconfDriver]:
    transport = request.param
    if transport == "system":
        assert shutil.which("ssh"), "OpenSSH client missing: run tools/bootstrap.sh --test"
    conn = NetconfDriver(
        host=daemon.host,
        port=daemon.port,
        auth_username=daemon.username,
        auth_password=daemon.password,
        auth_strict_key=False,
        transport=transport,
        timeout_socket=TIMEOUT,
        timeout_transport=TIMEOUT,
        timeout_ops=TIMEOUT,
    )
    conn.open()
    try:
        yield conn
    finally:
        conn.close()


def ok(response: NetconfResponse) -> etree._Element:
    """The rpc-reply of a successful operation."""
    assert not response.failed, response.result
    reply = etree.fromstring(response.result.encode())
    assert reply.tag == f"{{{NC}}}rpc-reply", response.result
    assert reply.find(f"{{{NC}}}rpc-error") is None, response.result
    return reply


def description(reply: etree._Element) -> str | None:
    return reply.findtext(
        f"{{{NC}}}data/{{{SOIP}}}serial-over-ip/{{{SOIP}}}serial-port/{{{SOIP}}}description"
    )


def edit(text: str) -> str:
    return (
        f'<config><serial-over-ip xmlns="{SOIP}"><serial-port><name>demo</name>'
        f"<description>{text}</description></serial-port></serial-over-ip></config>"
    )


def test_get_config(scrapli: NetconfDriver) -> None:
    reply = ok(scrapli.get_config(source="running"))
    assert (
        reply.findtext(f"{{{NC}}}data/{{{SOIP}}}serial-over-ip/{{{SOIP}}}channel/{{{SOIP}}}name")
        == "demo"
    )


def test_lock_edit_validate_commit_unlock(scrapli: NetconfDriver, daemon: Running) -> None:
    ok(scrapli.lock(target="candidate"))
    with daemon.connect() as other:
        with pytest.raises(RPCError) as denied:  # scrapli's session holds it
            other.lock("candidate")
        assert denied.value.tag == "lock-denied"

        ok(scrapli.edit_config(config=edit("set by scrapli"), target="candidate"))
        assert description(ok(scrapli.get_config(source="candidate"))) == "set by scrapli"
        assert description(ok(scrapli.get_config(source="running"))) != "set by scrapli"
        ok(scrapli.validate(source="candidate"))
        ok(scrapli.commit())
        assert description(ok(scrapli.get_config(source="running"))) == "set by scrapli"
        ok(scrapli.unlock(target="candidate"))

        other.lock("candidate")  # free again
        other.unlock("candidate")
        running = other.get_config("running").data
        assert b"set by scrapli" in etree.tostring(running)


def test_errors_come_back_as_errors(scrapli: NetconfDriver) -> None:
    """An rpc-error reaches scrapli as a failed response, and the session
    goes on."""
    bad = scrapli.edit_config(
        config=f'<config><serial-over-ip xmlns="{SOIP}"><colour>red</colour>'
        "</serial-over-ip></config>",
        target="candidate",
    )
    assert bad.failed
    assert "unknown-element" in bad.result
    ok(scrapli.get_config(source="running"))
