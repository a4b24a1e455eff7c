"""NACM (RFC 8341) end to end: ncclient over real SSH, an `oper` user beside
the `admin` recovery user, rules written with edit-config by admin."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PASSWORD, DaemonFactory, Running, add_user
from lxml import etree
from ncclient.manager import Manager
from ncclient.operations import RPCError

from nf.northbound.auth import Users

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
NS = {"nc": NC, "s": SOIP, "n": NACM}
OPER = "oper"


@pytest.fixture
def site(daemon: Running) -> Running:
    """The demo daemon with a second, non-admin user."""
    add_user(Users(daemon.state_dir / "users.json"), OPER, PASSWORD)
    return daemon


def oper(site: Running) -> Manager:
    return site.connect(username=OPER)  # type: ignore[no-any-return]


def nacm(body: str) -> str:
    return f'<config xmlns="{NC}"><nacm xmlns="{NACM}">{body}</nacm></config>'


OPS_GROUP = f"<groups><group><name>ops</name><user-name>{OPER}</user-name></group></groups>"


def rule_list(*rules: str, group: str = "ops") -> str:
    return (
        f"<rule-list><name>{group}-rules</name><group>{group}</group>{''.join(rules)}</rule-list>"
    )


def rule(name: str, action: str, ops: str = "*", module: str = "*", **target: str) -> str:
    kind = "".join(f"<{k.replace('_', '-')}>{v}</{k.replace('_', '-')}>" for k, v in target.items())
    return (
        f"<rule><name>{name}</name><module-name>{module}</module-name>{kind}"
        f"<access-operations>{ops}</access-operations><action>{action}</action></rule>"
    )


def set_nacm(site: Running, body: str) -> None:
    with site.connect() as m:
        m.edit_config(target="running", config=nacm(body))


RENAME_DEMO = (
    f'<config xmlns="{NC}"><serial-over-ip xmlns="{SOIP}"><channel><name>demo</name>'
    "<description>edited</description></channel></serial-over-ip></config>"
)


def error_of(exc: pytest.ExceptionInfo[RPCError]) -> tuple[str | None, str | None]:
    return exc.value.tag, exc.value.type


def counters(site: Running) -> dict[str, int]:
    with site.connect() as m:
        data = m.get(("subtree", f'<nacm xmlns="{NACM}"/>')).data_ele
    top = data.find("n:nacm", NS)
    assert top is not None
    return {
        name: int(top.findtext(f"n:{name}", namespaces=NS) or "-1")
        for name in ("denied-operations", "denied-data-writes", "denied-notifications")
    }


def test_non_admin_reads_but_may_not_write_by_default(site: Running) -> None:
    with oper(site) as m:
        data = m.get_config("running").data_ele
        assert data.find("s:serial-over-ip/s:channel/s:name", NS).text == "demo"
        assert m.get().data_ele.find("s:serial-over-ip", NS) is not None
        with pytest.raises(RPCError) as exc:
            m.edit_config(target="running", config=RENAME_DEMO)
        assert error_of(exc) == ("access-denied", "application")
        assert "serial-over-ip" in (exc.value.path or "")
        with pytest.raises(RPCError) as exc:
            m.edit_config(target="candidate", config=RENAME_DEMO)
        assert error_of(exc) == ("access-denied", "application")
    with site.connect() as m:
        assert b"edited" not in etree.tostring(m.get_config("running").data_ele)
    assert counters(site)["denied-data-writes"] == 2


def test_a_rule_list_granting_write_on_serial_over_ip_lets_the_group_edit(site: Running) -> None:
    set_nacm(
        site,
        OPS_GROUP
        + rule_list(
            rule("write-soip", "permit", module="nf-serial-over-ip", path="/serial-over-ip")
        ),
    )
    with oper(site) as m:
        m.edit_config(target="running", config=RENAME_DEMO)
        assert b"edited" in etree.tostring(m.get_config("running").data_ele)
        # through the candidate: edit, then commit, both checked
        m.edit_config(target="candidate", config=RENAME_DEMO.replace("edited", "via candidate"))
        m.commit()
        assert b"via candidate" in etree.tostring(m.get_config("running").data_ele)
        # the grant covers /serial-over-ip, not /nacm: rules stay out of reach
        with pytest.raises(RPCError) as exc:
            m.edit_config(target="running", config=nacm(rule_list(rule("x", "permit"))))
        assert error_of(exc) == ("access-denied", "application")
        # and /nacm (default-deny-all) is not even shown
        assert m.get_config("running").data_ele.find("n:nacm", NS) is None
        assert m.get().data_ele.find("n:nacm", NS) is None


def test_commit_checks_the_committing_user_against_the_changed_nodes(site: Running) -> None:
    """RFC 8341 §3.4.5: commit needs write access to the nodes of running
    that change, whoever edited the candidate."""
    with site.connect() as admin:
        admin.edit_config(target="candidate", config=RENAME_DEMO)
    with oper(site) as m:
        with pytest.raises(RPCError) as exc:
            m.commit()
        assert error_of(exc) == ("access-denied", "application")
        assert "description" in (exc.value.path or "")
        assert b"edited" not in etree.tostring(m.get_config("running").data_ele)
        # nothing changed in the candidate: committing that is an empty write
        m.discard_changes()
        m.commit()


def test_a_deny_read_rule_prunes_the_subtree_from_get_and_get_config(site: Running) -> None:
    set_nacm(
        site,
        OPS_GROUP
        + rule_list(
            rule(
                "hide-channels",
                "deny",
                ops="read",
                module="nf-serial-over-ip",
                path="/soip:serial-over-ip/soip:channel",
            )
        ),
    )
    with oper(site) as m:
        for data in (m.get_config("running").data_ele, m.get().data_ele):
            top = data.find("s:serial-over-ip", NS)
            assert top is not None
            assert top.find("s:channel", NS) is None
            assert top.find("s:serial-port", NS) is not None  # the rest stays
        # a filter asking for the channels gets nothing, not an error
        flt = f'<serial-over-ip xmlns="{SOIP}"><channel/></serial-over-ip>'
        assert m.get_config("running", ("subtree", flt)).data_ele.find(".//s:channel", NS) is None
    with site.connect() as admin:  # the recovery user sees everything
        assert admin.get_config("running").data_ele.find(".//s:channel", NS) is not None


def test_an_exec_deny_rule_refuses_the_operation(site: Running) -> None:
    set_nacm(
        site,
        OPS_GROUP
        + rule_list(
            rule(
                "no-clear",
                "deny",
                ops="exec",
                module="nf-serial-over-ip",
                rpc_name="clear-counters",
            ),
            rule("no-commit", "deny", ops="exec", module="ietf-netconf", rpc_name="commit"),
        ),
    )
    before = counters(site)["denied-operations"]
    with oper(site) as m:
        clear = f'<clear-counters xmlns="{SOIP}"/>'
        with pytest.raises(RPCError) as exc:
            m.dispatch(etree.fromstring(clear))
        assert error_of(exc) == ("access-denied", "protocol")
        assert exc.value.path == "/nc:rpc/soip:clear-counters"
        with pytest.raises(RPCError) as exc:
            m.commit()
        assert error_of(exc) == ("access-denied", "protocol")
        assert exc.value.path == "/nc:rpc/nc:commit"
        # the prefixes of the error-path are declared where it is
        path = exc.value.xml.find("nc:error-path", NS)
        assert path is not None and path.nsmap["nc"] == NC
        m.discard_changes()  # exec-default permit: everything else runs
    with site.connect() as admin:
        admin.dispatch(etree.fromstring(f'<clear-counters xmlns="{SOIP}"/>'))
        admin.commit()
    assert counters(site)["denied-operations"] == before + 2


def test_kill_session_and_delete_config_are_denied_by_default(
    make_daemon: DaemonFactory,
) -> None:
    running = make_daemon()
    add_user(Users(running.state_dir / "users.json"), OPER, PASSWORD)
    with running.connect() as admin, oper(running) as m:
        with pytest.raises(RPCError) as exc:
            m.kill_session(admin.session_id)
        assert error_of(exc) == ("access-denied", "protocol")
        with pytest.raises(RPCError) as exc:
            m.delete_config(target="startup")
        assert error_of(exc) == ("access-denied", "protocol")
        assert admin.connected
        # a rule can grant them
        admin.edit_config(
            target="running",
            config=nacm(
                OPS_GROUP
                + rule_list(
                    rule(
                        "kill", "permit", ops="exec", module="ietf-netconf", rpc_name="kill-session"
                    )
                )
            ),
        )
        other = running.connect()
        m.kill_session(other.session_id)
    assert counters(running)["denied-operations"] == 2


def test_close_session_is_always_permitted(site: Running) -> None:
    set_nacm(site, OPS_GROUP + rule_list(rule("nothing", "deny")))
    m = oper(site)
    with pytest.raises(RPCError) as exc:
        m.get_config("running")
    assert error_of(exc) == ("access-denied", "protocol")
    m.close_session()


def test_admin_is_never_restricted(site: Running) -> None:
    everyone = "<groups><group><name>all</name><user-name>admin</user-name></group></groups>"
    set_nacm(site, everyone + rule_list(rule("deny-all", "deny"), group="all"))
    with site.connect() as m:
        m.edit_config(target="running", config=RENAME_DEMO)
        assert m.get_config("running").data_ele.find("n:nacm", NS) is not None
        m.edit_config(
            target="running",
            config=nacm("<write-default>deny</write-default><exec-default>deny</exec-default>"),
        )
        m.commit()


def test_enable_nacm_false_turns_access_control_off(site: Running) -> None:
    set_nacm(site, "<enable-nacm>false</enable-nacm>")
    with oper(site) as m:
        m.edit_config(target="running", config=RENAME_DEMO)
        assert m.get_config("running").data_ele.find("n:nacm", NS) is not None
    assert counters(site) == {
        "denied-operations": 0,
        "denied-data-writes": 0,
        "denied-notifications": 0,
    }


def test_the_readme_example_grants_the_group_write_access(site: Running) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Access control (NACM, RFC 8341)", 1)[1]
    start = section.index("<config ")
    example = section[start : section.index("</config>", start) + len("</config>")]
    with site.connect() as m:
        m.edit_config(target="running", config=example.replace("alice", OPER))
    with oper(site) as m:
        m.edit_config(target="running", config=RENAME_DEMO)
        assert b"edited" in etree.tostring(m.get_config("running").data_ele)


def test_copy_config_running_to_startup_needs_only_execute_permission(site: Running) -> None:
    """RFC 8341 §3.2, <copy-config>: "If the source of the <copy-config> protocol
    operation is the running configuration datastore and the target is the
    startup configuration datastore, the client is only required to have
    permission to execute the <copy-config> protocol operation."  Any other
    copy into a datastore is checked node by node."""
    with oper(site) as m:  # no write rule at all; exec-default permit
        # running -> candidate changes nothing: there is nothing to refuse
        m.copy_config(source="running", target="candidate")
        m.copy_config(source="running", target="startup")
    with site.connect() as admin:
        startup = admin.get_config("startup").data_ele
        assert startup.findtext("s:serial-over-ip/s:channel/s:name", namespaces=NS) == "demo"
        admin.edit_config(target="candidate", config=RENAME_DEMO)
    saved = (site.state_dir / "startup.xml").read_bytes()
    with oper(site) as m:
        # candidate -> startup writes the description: write-default deny
        with pytest.raises(RPCError) as exc:
            m.copy_config(source="candidate", target="startup")
        assert error_of(exc) == ("access-denied", "application")
        assert "description" in (exc.value.path or "")
    assert (site.state_dir / "startup.xml").read_bytes() == saved
    assert counters(site)["denied-data-writes"] == 1
    # the permission to execute copy-config is still required
    set_nacm(
        site,
        OPS_GROUP
        + rule_list(
            rule("no-copy", "deny", ops="exec", module="ietf-netconf", rpc_name="copy-config")
        ),
    )
    with oper(site) as m:
        with pytest.raises(RPCError) as exc:
            m.copy_config(source="running", target="startup")
        assert error_of(exc) == ("access-denied", "protocol")
    assert (site.state_dir / "startup.xml").read_bytes() == saved
    assert counters(site)["denied-operations"] == 1


def test_delete_config_of_startup_is_checked_per_node(site: Running) -> None:
    set_nacm(
        site,
        OPS_GROUP
        + rule_list(
            rule("write-soip", "permit", module="nf-serial-over-ip", path="/serial-over-ip"),
            rule("del", "permit", ops="exec", module="ietf-netconf", rpc_name="delete-config"),
        ),
    )
    with site.connect() as admin:
        admin.copy_config(source="running", target="startup")
    with oper(site) as m:
        # delete-config may be executed now, but deleting /nacm of startup may not
        with pytest.raises(RPCError) as exc:
            m.delete_config(target="startup")
        assert error_of(exc) == ("access-denied", "application")
        assert "nacm" in (exc.value.path or "")
        assert (site.state_dir / "startup.xml").exists()
    assert counters(site)["denied-data-writes"] == 1


YANG = "urn:ietf:params:xml:ns:yang:1"
ALLOW = rule("allow-soip", "permit", module="nf-serial-over-ip", path="/serial-over-ip")
DENY = rule("deny-soip", "deny", module="nf-serial-over-ip", path="/serial-over-ip")


def rule_names(data: etree._Element) -> list[str]:
    names = data.xpath("n:nacm/n:rule-list/n:rule/n:name/text()", namespaces=NS)
    return [str(name) for name in names]


def test_reordered_rules_take_effect_at_once(site: Running) -> None:
    """RFC 7950 §7.8.6 / RFC 8341 §3.4.5: rules are tried in their
    configured order, and a client's new order is the order: a deny rule
    moved ahead of a permit rule refuses the very next request, in running,
    through the candidate, and in what is saved to startup."""
    set_nacm(site, OPS_GROUP + rule_list(ALLOW, DENY))
    with site.connect() as admin, oper(site) as m:
        m.edit_config(target="running", config=RENAME_DEMO)  # the permit rule comes first

        # replace /nacm with the deny rule first
        admin.edit_config(
            target="running",
            config=nacm(OPS_GROUP + rule_list(DENY, ALLOW)).replace(
                "<nacm ", f'<nacm xmlns:nc="{NC}" nc:operation="replace" ', 1
            ),
        )
        assert rule_names(admin.get_config("running").data_ele) == ["deny-soip", "allow-soip"]
        assert rule_names(admin.get().data_ele) == ["deny-soip", "allow-soip"]
        with pytest.raises(RPCError) as exc:
            m.edit_config(target="running", config=RENAME_DEMO.replace("edited", "denied"))
        assert error_of(exc) == ("access-denied", "application")

        # through the candidate: the rule-list replaced with the permit rule first
        admin.edit_config(
            target="candidate",
            config=nacm(rule_list(ALLOW, DENY)).replace(
                "<rule-list>", f'<rule-list xmlns:nc="{NC}" nc:operation="replace">', 1
            ),
        )
        assert rule_names(admin.get_config("candidate").data_ele) == ["allow-soip", "deny-soip"]
        admin.commit()
        assert rule_names(admin.get_config("running").data_ele) == ["allow-soip", "deny-soip"]
        m.edit_config(target="running", config=RENAME_DEMO.replace("edited", "permitted"))

        # yang:insert="first" moves the deny rule ahead
        admin.edit_config(
            target="running",
            config=nacm(
                f'<rule-list><name>ops-rules</name><rule xmlns:yang="{YANG}" yang:insert="first">'
                "<name>deny-soip</name></rule></rule-list>"
            ),
        )
        assert rule_names(admin.get_config("running").data_ele) == ["deny-soip", "allow-soip"]
        with pytest.raises(RPCError) as exc:
            m.edit_config(target="running", config=RENAME_DEMO.replace("edited", "denied"))
        assert error_of(exc) == ("access-denied", "application")

        # saved to startup in that order
        admin.copy_config(source="running", target="startup")
        assert rule_names(admin.get_config("startup").data_ele) == ["deny-soip", "allow-soip"]
        saved = etree.fromstring((site.state_dir / "startup.xml").read_bytes())
        assert saved.xpath("//n:rule/n:name/text()", namespaces=NS) == ["deny-soip", "allow-soip"]

        # yang:insert="before" with the key of its neighbour moves it back
        # (ncclient drops the xmlns:nacm that only the key uses: the module's
        # own prefix is understood without it)
        admin.edit_config(
            target="running",
            config=nacm(
                f'<rule-list><name>ops-rules</name><rule xmlns:yang="{YANG}" '
                f'xmlns:nacm="{NACM}" yang:insert="before" yang:key="[nacm:name=\'deny-soip\']">'
                "<name>allow-soip</name></rule></rule-list>"
            ),
        )
        assert rule_names(admin.get_config("running").data_ele) == ["allow-soip", "deny-soip"]
        m.edit_config(target="running", config=RENAME_DEMO.replace("edited", "again"))

        # a neighbour that does not exist: RFC 7950 §15.7
        with pytest.raises(RPCError) as exc:
            admin.edit_config(
                target="running",
                config=nacm(
                    f'<rule-list><name>ops-rules</name><rule xmlns:yang="{YANG}" '
                    f'xmlns:nacm="{NACM}" yang:insert="after" yang:key="[nacm:name=\'none\']">'
                    "<name>allow-soip</name></rule></rule-list>"
                ),
            )
        assert exc.value.tag == "bad-attribute"
        assert exc.value.xml.findtext("nc:error-app-tag", namespaces=NS) == "missing-instance"
    with site.connect() as admin:
        data = admin.get_config("running").data_ele
        assert data.findtext(".//s:channel/s:description", namespaces=NS) == "again"


def test_notifications_are_filtered_by_nacm(site: Running) -> None:
    """§3.4.6: a notification rule denying netconf-config-change keeps it from
    the group's subscription (and counts it) while other events still come;
    admin's subscription gets everything."""
    set_nacm(
        site,
        OPS_GROUP
        + rule_list(
            rule(
                "no-config-change",
                "deny",
                module="ietf-netconf-notifications",
                notification_name="netconf-config-change",
            )
        ),
    )
    before = counters(site)["denied-notifications"]

    def next_event(m: Manager) -> str:
        n = m.take_notification(block=True, timeout=5)
        assert n is not None, "no notification within 5 s"
        return str(etree.QName(etree.fromstring(n.notification_xml.encode())[1]).localname)

    with oper(site) as watcher, site.connect() as admin_watcher, site.connect() as m:
        watcher.create_subscription()
        admin_watcher.create_subscription()
        m.edit_config(target="running", config=RENAME_DEMO)
        with site.connect():  # a session start and end: allowed for the group
            pass
        assert next_event(admin_watcher) == "netconf-config-change"
        # m's own session-start may come first: the server publishes it when
        # it has read m's hello, which can be after ncclient's connect
        # returned and the subscriptions were made
        seen: list[str] = []
        while "netconf-session-end" not in seen:
            seen.append(next_event(watcher))
            assert len(seen) <= 3, seen
        assert "netconf-config-change" not in seen, "config change not withheld"
        assert seen[-2:] == ["netconf-session-start", "netconf-session-end"], seen
        assert watcher.take_notification(block=True, timeout=0.3) is None
    assert counters(site)["denied-notifications"] == before + 1
