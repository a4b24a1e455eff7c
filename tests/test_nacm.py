"""The NACM decision engine (RFC 8341 §3.4), table by table, without a server.

Policies are written as /nacm XML and parsed with the product schema, so
the tables also show that what an operator configures is what the engine
reads."""

from __future__ import annotations

import pytest
from lxml import etree

from nf.config.codec import parse
from nf.config.tree import Node
from nf.northbound.nacm import (
    DENY_ALL,
    NACM_NS,
    Access,
    Counters,
    DataStep,
    PathStep,
    PathSyntaxError,
    parse_path,
    permits_notification,
    policy_of,
    prune,
    writes,
)
from nf.schema import default_schema

SCHEMA = default_schema()
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SOIP = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"
NACM = NACM_NS
OPS = "<groups><group><name>ops</name><user-name>oper</user-name></group></groups>"


def tree_of(body: str) -> Node:
    tree, errors = parse(etree.fromstring(f'<config xmlns="{NC}">{body}</config>'), SCHEMA)
    assert errors == []
    return tree


def nacm_tree(body: str) -> Node:
    found = tree_of(f'<nacm xmlns="{NACM}">{body}</nacm>').get((NACM, "nacm"))
    assert isinstance(found, Node)
    return found


def rules(*rules: str, groups: str = "ops") -> str:
    names = "".join(f"<group>{g}</group>" for g in groups.split())
    return f"<rule-list><name>rl-{groups}</name>{names}{''.join(rules)}</rule-list>"


def rule(name: str, action: str, ops: str = "*", module: str = "*", **target: str) -> str:
    kind = "".join(f"<{k.replace('_', '-')}>{v}</{k.replace('_', '-')}>" for k, v in target.items())
    return (
        f"<rule><name>{name}</name><module-name>{module}</module-name>{kind}"
        f"<access-operations>{ops}</access-operations><action>{action}</action></rule>"
    )


def access(body: str, user: str = "oper", recovery: bool = False) -> Access:
    return Access(policy_of(nacm_tree(body) if body else None, SCHEMA), user, recovery)


NETCONF = "ietf-netconf"
SOIP_MOD = "nf-serial-over-ip"

RPC_TABLE = [
    # (policy, user, module, rpc, expected, why)
    ("", "oper", NETCONF, "get", True, "exec-default permit"),
    ("", "oper", NETCONF, "edit-config", True, "exec-default permit (writes are checked per node)"),
    ("", "oper", NETCONF, "kill-session", False, "RFC 8341 §3.2: default-deny-all"),
    ("", "oper", NETCONF, "delete-config", False, "RFC 8341 §3.2: default-deny-all"),
    ("", "oper", NETCONF, "close-session", True, "always permitted"),
    ("", "oper", SOIP_MOD, "clear-counters", True, "exec-default permit"),
    ("<exec-default>deny</exec-default>", "oper", NETCONF, "get", False, "exec-default deny"),
    ("<exec-default>deny</exec-default>", "oper", NETCONF, "close-session", True, "always"),
    ("<enable-nacm>false</enable-nacm>", "oper", NETCONF, "kill-session", True, "NACM off"),
    (
        OPS + rules(rule("k", "permit", "exec", NETCONF, rpc_name="kill-session")),
        "oper",
        NETCONF,
        "kill-session",
        True,
        "an explicit rule beats default-deny-all",
    ),
    (
        OPS + rules(rule("k", "permit", "exec", NETCONF, rpc_name="kill-session")),
        "guest",
        NETCONF,
        "kill-session",
        False,
        "the rule is for the ops group only",
    ),
    (
        OPS + rules(rule("k", "permit", "exec", NETCONF, rpc_name="kill-session"), groups="*"),
        "oper",
        NETCONF,
        "kill-session",
        True,
        'group "*" covers every user in a group',
    ),
    (
        OPS + rules(rule("k", "permit", "exec", NETCONF, rpc_name="kill-session"), groups="*"),
        "guest",
        NETCONF,
        "kill-session",
        False,
        "§3.4.4 step 6: a user in no group has no rule-lists",
    ),
    (
        OPS + rules(rule("a", "deny", "exec", rpc_name="get"), rule("b", "permit", rpc_name="get")),
        "oper",
        NETCONF,
        "get",
        False,
        "the first matching rule decides",
    ),
    (
        OPS
        + rules(rule("a", "deny", "exec", rpc_name="get"))
        + rules(rule("b", "permit", rpc_name="get"), groups="ops other"),
        "oper",
        NETCONF,
        "get",
        False,
        "rule-lists in order",
    ),
    (
        OPS + rules(rule("a", "deny", "exec", SOIP_MOD, rpc_name="get")),
        "oper",
        NETCONF,
        "get",
        True,
        "module-name must match",
    ),
    (
        OPS + rules(rule("a", "deny", "exec", NETCONF, rpc_name="*")),
        "oper",
        NETCONF,
        "lock",
        False,
        'rpc-name "*"',
    ),
    (
        OPS + rules(rule("a", "deny", "read", rpc_name="get")),
        "oper",
        NETCONF,
        "get",
        True,
        "access-operations without exec does not match",
    ),
    (OPS + rules(rule("a", "deny", "exec")), "oper", NETCONF, "get", False, "no rule-type: any"),
    (
        OPS + rules(rule("a", "deny", notification_name="*")),
        "oper",
        NETCONF,
        "get",
        True,
        "a notification rule is not about rpcs",
    ),
    (
        OPS + rules(rule("a", "deny", path="/")),
        "oper",
        NETCONF,
        "get",
        True,
        "a data rule is not about rpcs",
    ),
    (
        OPS + rules(rule("a", "deny")),
        "admin",
        NETCONF,
        "get",
        True,
        "a user outside the group",
    ),
]


@pytest.mark.parametrize(("body", "user", "module", "name", "expected", "why"), RPC_TABLE)
def test_rpc_decisions(
    body: str, user: str, module: str, name: str, expected: bool, why: str
) -> None:
    assert access(body, user).rpc(module, name) is expected, why


def test_recovery_session_is_never_restricted() -> None:
    denied = OPS.replace("oper", "admin") + rules(rule("all", "deny"))
    recovery = access(denied, "admin", recovery=True)
    assert recovery.rpc(NETCONF, "kill-session")
    assert recovery.data(CHANNEL, "delete", "all")
    assert recovery.notification(SOIP_MOD, "anything")
    assert not access(denied, "admin").rpc(NETCONF, "get")


def test_rpc_default_deny_all_statement_of_the_schema() -> None:
    assert not access("").rpc("m", "op", frozenset({DENY_ALL}))
    assert access("").rpc("m", "op", frozenset())


TOP = DataStep(SOIP_MOD, "soip", "serial-over-ip")
CHANNEL = (TOP, DataStep(SOIP_MOD, "soip", "channel", (("name", "demo"),)))
CHANNEL_LEAF = (*CHANNEL, DataStep(SOIP_MOD, "soip", "description"))
PORT = (TOP, DataStep(SOIP_MOD, "soip", "serial-port", (("name", "p1"),)))
NACM_TOP = (DataStep("ietf-netconf-acm", "nacm", "nacm"),)

DATA_TABLE = [
    # (policy, path, access, default-deny, expected, why)
    ("", CHANNEL, "read", None, True, "read-default permit"),
    ("", CHANNEL, "create", None, False, "write-default deny"),
    ("", CHANNEL, "update", None, False, "write-default deny"),
    ("", CHANNEL, "delete", None, False, "write-default deny"),
    ("<write-default>permit</write-default>", CHANNEL, "create", None, True, "write-default"),
    ("<read-default>deny</read-default>", CHANNEL, "read", None, False, "read-default"),
    ("<write-default>permit</write-default>", NACM_TOP, "update", "all", False, "deny-all"),
    ("", NACM_TOP, "read", "all", False, "default-deny-all hides"),
    ("", CHANNEL, "read", "write", True, "default-deny-write allows reading"),
    ("<write-default>permit</write-default>", CHANNEL, "create", "write", False, "deny-write"),
    (
        OPS
        + rules(rule("w", "permit", "create update delete", SOIP_MOD, path="/soip:serial-over-ip")),
        CHANNEL_LEAF,
        "update",
        None,
        True,
        "a path covers its descendants",
    ),
    (
        OPS + rules(rule("w", "permit", "create update", path="/nf-serial-over-ip:serial-over-ip")),
        CHANNEL,
        "create",
        None,
        True,
        "a prefix may be the module name",
    ),
    (
        OPS + rules(rule("w", "permit", "create", path="/other:serial-over-ip")),
        CHANNEL,
        "create",
        None,
        False,
        "a prefix of another module does not match",
    ),
    (
        OPS + rules(rule("w", "permit", "create update", path="/serial-over-ip")),
        CHANNEL,
        "delete",
        None,
        False,
        "access-operations without delete",
    ),
    (
        OPS
        + rules(
            rule(
                "w", "permit", "delete", path="/soip:serial-over-ip/soip:channel[soip:name='demo']"
            )
        ),
        CHANNEL_LEAF,
        "delete",
        None,
        True,
        "a key predicate that matches",
    ),
    (
        OPS + rules(rule("w", "permit", "delete", path='/serial-over-ip/channel[name="other"]')),
        CHANNEL,
        "delete",
        None,
        False,
        "a key predicate that does not match",
    ),
    (
        OPS + rules(rule("w", "permit", "delete", path="/serial-over-ip/*")),
        PORT,
        "delete",
        None,
        True,
        'a "*" step',
    ),
    (
        OPS + rules(rule("r", "deny", "read", path="/serial-over-ip/channel/description")),
        CHANNEL,
        "read",
        None,
        True,
        "a path below the node does not cover it",
    ),
    (
        OPS + rules(rule("r", "deny", "read", module="ietf-netconf-acm", path="/serial-over-ip")),
        CHANNEL,
        "read",
        None,
        True,
        "module-name must be the node's module",
    ),
    (
        OPS + rules(rule("r", "permit", "read", path="/nacm:nacm")),
        NACM_TOP,
        "read",
        "all",
        True,
        "an explicit rule opens a default-deny-all node",
    ),
    (
        OPS + rules(rule("r", "deny", "read", path="/a:b[bad")),
        CHANNEL,
        "read",
        None,
        True,
        "a rule path that does not parse matches nothing",
    ),
    (
        OPS + rules(rule("r", "deny", "read", rpc_name="get")),
        CHANNEL,
        "read",
        None,
        True,
        "an rpc rule is not about data",
    ),
    (OPS + rules(rule("r", "deny", "read")), CHANNEL, "read", None, False, "no rule-type: any"),
]


@pytest.mark.parametrize(("body", "path", "op", "deny", "expected", "why"), DATA_TABLE)
def test_data_decisions(
    body: str,
    path: tuple[DataStep, ...],
    op: str,
    deny: str | None,
    expected: bool,
    why: str,
) -> None:
    assert access(body).data(path, op, deny) is expected, why


NOTIFICATION_TABLE = [
    ("", SOIP_MOD, "port-down", True, "read-default permit"),
    ("<read-default>deny</read-default>", SOIP_MOD, "port-down", False, "read-default"),
    ("<enable-nacm>false</enable-nacm><read-default>deny</read-default>", "m", "n", True, "off"),
    (
        OPS + rules(rule("n", "deny", "read", notification_name="port-down")),
        SOIP_MOD,
        "port-down",
        False,
        "rule",
    ),
    (
        OPS + rules(rule("n", "deny", "read", notification_name="port-down")),
        SOIP_MOD,
        "port-up",
        True,
        "name",
    ),
    (
        OPS + rules(rule("n", "deny", "exec", notification_name="*")),
        SOIP_MOD,
        "port-up",
        True,
        "no read",
    ),
    (OPS + rules(rule("n", "deny", "read", rpc_name="*")), SOIP_MOD, "port-up", True, "rpc rule"),
    (
        "<read-default>deny</read-default>",
        "nc-notifications",
        "replayComplete",
        True,
        "RFC 8341 §3.4.6: never filtered",
    ),
    (
        OPS + rules(rule("n", "deny", "*", "ietf-netconf-notifications")),
        SOIP_MOD,
        "x",
        True,
        "module",
    ),
]


@pytest.mark.parametrize(("body", "module", "name", "expected", "why"), NOTIFICATION_TABLE)
def test_notification_decisions(
    body: str, module: str, name: str, expected: bool, why: str
) -> None:
    tree = nacm_tree(body) if body else None
    assert permits_notification(tree, "oper", module, name, schema=SCHEMA) is expected, why
    assert permits_notification(tree, "oper", module, name, recovery=True) is True


PATHS = [
    ("/", ()),
    ("/a:b", (PathStep("a", "b"),)),
    ("/b/c", (PathStep(None, "b"), PathStep(None, "c"))),
    (
        "/a:b[a:k='v 1'][j=\"w\"]/*",
        (PathStep("a", "b", (("k", "v 1"), ("j", "w"))), PathStep(None, "*")),
    ),
    ("/a:l[.='x']", (PathStep("a", "l", ((".", "x"),)),)),
]


@pytest.mark.parametrize(("text", "steps"), PATHS)
def test_parse_path(text: str, steps: tuple[PathStep, ...]) -> None:
    assert parse_path(text) == steps


@pytest.mark.parametrize("text", ["b", "/a:", "/a:b[", "/a:b[k=v]", "/a b"])
def test_parse_path_refuses(text: str) -> None:
    with pytest.raises(PathSyntaxError):
        parse_path(text)


# -- trees: writes and read pruning ---------------------------------------------


def soip(body: str) -> str:
    return f'<serial-over-ip xmlns="{SOIP}">{body}</serial-over-ip>'


PORT_XML = "<serial-port><name>p1</name><device>loop://</device></serial-port>"
CHAN_XML = (
    "<channel><name>c1</name><serial-port>p1</serial-port><mode>server</mode>"
    "<listen><port>4001</port></listen>{extra}</channel>"
)


def write_set(old: str, new: str) -> set[tuple[str, str]]:
    return {(w.access, w.where) for w in writes(tree_of(old), tree_of(new), SCHEMA)}


def test_writes_are_the_exact_changed_nodes() -> None:
    base = soip(PORT_XML + CHAN_XML.format(extra=""))
    chan = "/soip:serial-over-ip/soip:channel[soip:name='c1']"
    assert write_set(base, base) == set()
    assert write_set(
        base, soip(PORT_XML + CHAN_XML.format(extra="<description>d</description>"))
    ) == {("create", f"{chan}/soip:description")}
    old = soip(PORT_XML + CHAN_XML.format(extra="<description>d</description>"))
    new = soip(PORT_XML + CHAN_XML.format(extra="<description>e</description>"))
    assert write_set(old, new) == {("update", f"{chan}/soip:description")}
    assert write_set(new, soip(PORT_XML)) == {
        ("delete", chan),
        ("delete", f"{chan}/soip:name"),
        ("delete", f"{chan}/soip:serial-port"),
        ("delete", f"{chan}/soip:mode"),
        ("delete", f"{chan}/soip:listen"),
        ("delete", f"{chan}/soip:listen/soip:port"),
        ("delete", f"{chan}/soip:description"),
    }
    peers_old = soip(PORT_XML + CHAN_XML.format(extra="<allowed-peer>10.0.0.1</allowed-peer>"))
    peers_new = soip(PORT_XML + CHAN_XML.format(extra="<allowed-peer>10.0.0.2</allowed-peer>"))
    assert write_set(peers_old, peers_new) == {
        ("delete", f"{chan}/soip:allowed-peer[.='10.0.0.1']"),
        ("create", f"{chan}/soip:allowed-peer[.='10.0.0.2']"),
    }


def test_reordering_a_user_ordered_list_is_an_update() -> None:
    one = rules(rule("a", "deny"), groups="x").replace("rl-x", "one")
    two = rules(rule("b", "deny"), groups="y").replace("rl-y", "two")
    before = f'<nacm xmlns="{NACM}">{one}{two}</nacm>'
    after = f'<nacm xmlns="{NACM}">{two}{one}</nacm>'
    changed = write_set(before, after)
    assert ("update", "/nacm:nacm/nacm:rule-list[nacm:name='one']") in changed
    assert {a for a, _ in changed} == {"update"}


def test_prune_read_denied_subtrees_and_keep_the_way_to_readable_nodes() -> None:
    tree = tree_of(
        soip(PORT_XML + CHAN_XML.format(extra="<description>d</description>"))
        + f'<nacm xmlns="{NACM}">{OPS}</nacm>'
    )
    everything = access("")
    seen = prune(tree, SCHEMA, everything)
    assert seen.get((NACM, "nacm")) is None  # default-deny-all
    assert seen.get((SOIP, "serial-over-ip")) is tree.get((SOIP, "serial-over-ip"))  # shared

    hide_descriptions = access(
        OPS + rules(rule("r", "deny", "read", path="/serial-over-ip/channel/description"))
    )
    top = prune(tree, SCHEMA, hide_descriptions).get((SOIP, "serial-over-ip"))
    assert isinstance(top, Node)
    channels = top.get((SOIP, "channel"))
    entry = channels.get(("c1",))  # type: ignore[union-attr]
    assert entry is not None and entry.get((SOIP, "description")) is None
    assert entry.get((SOIP, "mode")) == "server"

    only_groups = access(OPS + rules(rule("r", "permit", "read", path="/nacm/groups")))
    nacm = prune(tree, SCHEMA, only_groups).get((NACM, "nacm"))
    assert isinstance(nacm, Node)
    assert [q[1] for q, _ in nacm.items()] == ["groups"]

    assert prune(tree, SCHEMA, access("", "admin", recovery=True)) is tree


def test_counters_are_state_of_nacm() -> None:
    counters = Counters()
    counters.denied_operation()
    counters.denied_data_write()
    counters.denied_data_write()
    counters.denied_notification()
    top = counters.state().get((NACM, "nacm"))
    assert isinstance(top, Node)
    assert {q[1]: v for q, v in top.items()} == {
        "denied-operations": "1",
        "denied-data-writes": "2",
        "denied-notifications": "1",
    }


BREAK = (*PORT, DataStep(SOIP_MOD, "soip", "send-break"))


@pytest.mark.parametrize(
    ("policy", "expected", "why"),
    [
        ("", True, "exec-default permit"),
        ("<exec-default>deny</exec-default>", False, "exec-default deny"),
        (
            "<exec-default>deny</exec-default>"
            + OPS
            + rules(
                rule("b", "permit", "exec", SOIP_MOD, path="/soip:serial-over-ip/soip:serial-port")
            ),
            True,
            "an exec rule on a path that covers the action",
        ),
        (
            OPS + rules(rule("b", "deny", "exec", SOIP_MOD, path="/soip:serial-over-ip")),
            False,
            "an exec rule denies",
        ),
        (
            "<exec-default>deny</exec-default>"
            + OPS
            + rules(rule("w", "permit", "update", SOIP_MOD, path="/soip:serial-over-ip")),
            False,
            "a write rule does not cover exec",
        ),
    ],
)
def test_action_access(policy: str, expected: bool, why: str) -> None:
    """§3.4.5: an action (serial-port/send-break) needs exec on its node."""
    assert access(policy).action(BREAK) is expected, why
    assert access(policy, user="admin", recovery=True).action(BREAK)


def test_access_is_made_once_per_policy_and_user() -> None:
    """Context.access: every rpc asks for the user's decisions; they are
    made once per /nacm and user, and made again under a new /nacm."""
    from anyio.from_thread import start_blocking_portal

    from nf.app import DEMO_CONFIG, load_initial
    from nf.northbound.datastores import Datastores
    from nf.northbound.rpcs import Context
    from nf.runtime.transaction import NullRuntime

    class NoSessions:
        def kill(self, session_id: int, by: int | None = None) -> bool:
            return False

    datastores = Datastores(SCHEMA, NullRuntime(), load_initial(DEMO_CONFIG, SCHEMA))
    groups = "<groups><group><name>ops</name><user-name>oper</user-name></group></groups>"
    before = tree_of(f'<nacm xmlns="{NACM}">{groups}</nacm>')
    deny_get = rules(rule("no-get", "deny", "exec", NETCONF, rpc_name="get"))
    after = tree_of(f'<nacm xmlns="{NACM}">{groups}{deny_get}</nacm>')
    with start_blocking_portal() as portal:
        ctx = Context(SCHEMA, datastores, portal, NoSessions())  # type: ignore[arg-type]
        first = ctx.access(before, "oper")
        assert ctx.access(before, "oper") is first
        assert ctx.access(before, "other") is not first
        assert first.rpc(NETCONF, "get")
        later = ctx.access(after, "oper")
        assert later is not first and not later.rpc(NETCONF, "get")
        assert ctx.access(after, "oper") is later
        # the recovery user's: one Access, never restricted, whatever /nacm says
        from nf.northbound.rpcs import Handlers

        recovery = [Handlers(ctx, n, ctx.recovery_user).access for n in (1, 2)]
        assert recovery[0] is recovery[1] is ctx.recovery_access
        assert recovery[0].rpc(NETCONF, "get") and recovery[0].unrestricted
