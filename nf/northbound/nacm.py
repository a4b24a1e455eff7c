"""NETCONF access control (RFC 8341): the decision engine, no I/O.

Every decision is a pure function of the /nacm configuration subtree (taken
from running, as RFC 8341 §3.4 says), the username and the request: a
protocol operation (module and name), a data node (its path from the root)
with an access (read, create, update, delete), or a notification.  The
NETCONF layer (``rpcs.py``) asks before it dispatches, prunes what it
returns, and checks every changed node before a datastore changes; the
notification sender asks ``event_permitted``.

The order of the checks is RFC 8341 §3.4.4-§3.4.6: enable-nacm, the
recovery session, close-session, then the rule-lists of the user's groups
in order and their rules in order (the first matching rule decides), then
the ``nacm:default-deny-all`` / ``nacm:default-deny-write`` statements of
the schema (inherited by descendants), the base protocol's defaults
(§3.2: kill-session and delete-config are default-deny-all) and last
read-default, write-default and exec-default.

Rule paths (``node-instance-identifier``) name nodes with prefixes; the
datastore keeps the leaf as text without the XML namespace declarations it
came with, so a prefix is matched against the data node's module prefix or
module name, and a step without a prefix matches any module.  The path
covers the node it names and all its descendants.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from nf.config.errors import ConfigError
from nf.config.tree import PREDICATE, Child, Key, LeafList, ListNode, Node, quote, step
from nf.northbound.auth import ADMIN
from nf.schema import SchemaIndex, SchemaNode
from nf.schema.footprint import subtree

RECOVERY_USER = ADMIN
"""RFC 8341 §3.4: sessions of this user bypass access control, so the
operator can always repair /nacm; created at first start (auth.py)."""
NACM_MODULE = "ietf-netconf-acm"
NACM_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"
NETCONF_MODULE = "ietf-netconf"
"""The module of the base protocol operations (get, edit-config, ...)."""
DENY_ALL = (NACM_MODULE, "default-deny-all")
DENY_WRITE = (NACM_MODULE, "default-deny-write")
BASE_DENY_ALL = frozenset({"kill-session", "delete-config"})
"""RFC 8341 §3.2.6-§3.2.7 (the ietf-netconf module marks these
default-deny-all; we do not load that module, so the marks are kept here)."""
ALWAYS_SENT = frozenset({"replayComplete", "notificationComplete"})
"""RFC 8341 §3.4.6: these RFC 5277 notifications are never filtered."""
ACCESS = ("create", "read", "update", "delete", "exec")
WRITE = frozenset({"create", "update", "delete"})
RFC_DEFAULTS = {"read-default": "permit", "write-default": "deny", "exec-default": "permit"}
"""Used only when no schema is given; ``policy_of`` reads the module's defaults."""


def _q(name: str) -> tuple[str, str]:
    return (NACM_NS, name)


@dataclass(frozen=True)
class PathStep:
    """One step of a rule path: prefix (None: any module), name ("*": any)
    and key predicates (local name -> value; "." for a leaf-list value)."""

    prefix: str | None
    name: str
    predicates: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DataStep:
    """One step of a data node's path: module, its prefix, name and, for a
    list entry or leaf-list value, its keys (local name -> value)."""

    module: str
    prefix: str
    name: str
    keys: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Rule:
    """One /nacm/rule-list/rule."""

    name: str
    module: str = "*"
    rpc: str | None = None
    notification: str | None = None
    path: tuple[PathStep, ...] | None = None
    operations: frozenset[str] = frozenset({"*"})
    permit: bool = False

    @property
    def kind(self) -> str | None:
        """Which case of the rule-type choice is set (None: matches any request)."""
        if self.rpc is not None:
            return "rpc"
        if self.notification is not None:
            return "notification"
        if self.path is not None:
            return "data"
        return None

    def allows(self, access: str) -> bool:
        return "*" in self.operations or access in self.operations


@dataclass(frozen=True)
class RuleList:
    name: str
    groups: frozenset[str]
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Policy:
    """The /nacm configuration, parsed once per running tree."""

    enabled: bool = True
    read_default: bool = True
    write_default: bool = False
    exec_default: bool = True
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """group name -> user names."""
    rule_lists: tuple[RuleList, ...] = ()

    def groups_of(self, user: str) -> frozenset[str]:
        return frozenset(name for name, users in self.groups.items() if user in users)


_STEP = re.compile(r"\s*(?:([A-Za-z_][\w.-]*):)?([A-Za-z_][\w.-]*|\*)\s*")


class PathSyntaxError(ValueError):
    pass


def parse_path(text: str) -> tuple[PathStep, ...]:
    """``/p:a/p:b[p:k='v']`` -> steps; ``/`` is the empty path (every node)."""
    text = text.strip()
    if not text.startswith("/"):
        raise PathSyntaxError(f'rule path "{text}" is not absolute')
    steps: list[PathStep] = []
    pos = 1
    while pos < len(text):
        match = _STEP.match(text, pos)
        if match is None or not match.group(2):
            raise PathSyntaxError(f'rule path "{text}": bad step at {pos}')
        pos = match.end()
        predicates: list[tuple[str, str]] = []
        while pos < len(text) and text[pos] == "[":
            pred = PREDICATE.match(text, pos)
            if pred is None:
                raise PathSyntaxError(f'rule path "{text}": bad predicate at {pos}')
            value = pred.group(3) if pred.group(3) is not None else pred.group(4)
            predicates.append((pred.group(2), value))
            pos = pred.end()
        steps.append(PathStep(match.group(1), match.group(2), tuple(predicates)))
        if pos < len(text):
            if text[pos] != "/":
                raise PathSyntaxError(f'rule path "{text}": unexpected "{text[pos]}"')
            pos += 1
    return tuple(steps)


def _text(node: Node, name: str, default: str | None = None) -> str | None:
    value = node.get(_q(name))
    return value if isinstance(value, str) else default


def _values(node: Node, name: str) -> tuple[str, ...]:
    value = node.get(_q(name))
    return value.values if isinstance(value, LeafList) else ()


def _defaults(schema: SchemaIndex | None) -> dict[str, str]:
    """read-/write-/exec-default as the module declares them."""
    found = dict(RFC_DEFAULTS)
    top = schema.root.child(*_q("nacm")) if schema is not None else None
    if top is not None:
        for name in found:
            leaf = top.child(*_q(name))
            if leaf is not None and leaf.defaults:
                found[name] = leaf.defaults[0]
    return found


def policy_of(nacm: Node | None, schema: SchemaIndex | None = None) -> Policy:
    """The policy in a /nacm subtree (None or empty: every default).

    A rule whose path does not parse matches nothing: it can neither grant
    nor deny, and the defaults decide.
    """
    nacm = nacm if nacm is not None else Node()
    defaults = _defaults(schema)

    def flag(name: str, default: str) -> bool:
        return (_text(nacm, name) or default) in ("true", "permit")

    groups: dict[str, frozenset[str]] = {}
    holder = nacm.get(_q("groups"))
    entries = holder.get(_q("group")) if isinstance(holder, Node) else None
    if isinstance(entries, ListNode):
        for key, entry in entries.items():
            groups[key[0]] = frozenset(_values(entry, "user-name"))
    rule_lists: list[RuleList] = []
    lists = nacm.get(_q("rule-list"))
    if isinstance(lists, ListNode):
        for key, entry in lists.items():
            rules: list[Rule] = []
            rule_entries = entry.get(_q("rule"))
            if isinstance(rule_entries, ListNode):
                for rkey, rule in rule_entries.items():
                    rules.append(_rule(rkey[0], rule))
            rule_lists.append(RuleList(key[0], frozenset(_values(entry, "group")), tuple(rules)))
    return Policy(
        enabled=flag("enable-nacm", "true"),
        read_default=flag("read-default", defaults["read-default"]),
        write_default=flag("write-default", defaults["write-default"]),
        exec_default=flag("exec-default", defaults["exec-default"]),
        groups=groups,
        rule_lists=tuple(rule_lists),
    )


_NEVER = (PathStep(None, "\x00never"),)
"""The path of a rule whose path does not parse: no node has this name."""


def _rule(name: str, entry: Node) -> Rule:
    path_text = _text(entry, "path")
    path: tuple[PathStep, ...] | None = None
    if path_text is not None:
        try:
            path = parse_path(path_text)
        except PathSyntaxError:
            path = _NEVER
    return Rule(
        name=name,
        module=_text(entry, "module-name", "*") or "*",
        rpc=_text(entry, "rpc-name"),
        notification=_text(entry, "notification-name"),
        path=path,
        operations=frozenset((_text(entry, "access-operations", "*") or "*").split()),
        permit=_text(entry, "action") == "permit",
    )


def _path_covers(path: Sequence[PathStep], node: Sequence[DataStep]) -> bool:
    """Does the rule path name ``node`` or one of its ancestors?"""
    if len(path) > len(node):
        return False
    for want, have in zip(path, node, strict=False):
        if want.name != "*" and want.name != have.name:
            return False
        if want.prefix is not None and want.prefix not in (have.prefix, have.module):
            return False
        keys = dict(have.keys)
        for key, value in want.predicates:
            if keys.get(key) != value:
                return False
    return True


class Access:
    """NACM decisions for one user under one policy (RFC 8341 §3.4).

    ``recovery`` is the recovery session of §3.4: it is never restricted.
    """

    def __init__(self, policy: Policy, user: str, recovery: bool = False) -> None:
        self.policy = policy
        self.user = user
        self.unrestricted = recovery or not policy.enabled
        groups = policy.groups_of(user)
        # §3.4.4 steps 6-7: only rule-lists naming one of the user's groups
        # (or "*") apply, and a user in no group has none
        self.rules: tuple[Rule, ...] = tuple(
            rule
            for rule_list in policy.rule_lists
            if groups and ("*" in rule_list.groups or rule_list.groups & groups)
            for rule in rule_list.rules
        )
        self.read_rules = tuple(
            r for r in self.rules if r.kind in (None, "data") and r.allows("read")
        )

    def _first(self, kind: str, module: str, name: str | None, access: str) -> Rule | None:
        for rule in self.rules:
            if rule.kind not in (None, kind) or not rule.allows(access):
                continue
            if rule.module != "*" and rule.module != module:
                continue
            target = rule.rpc if kind == "rpc" else rule.notification
            if target is not None and target != "*" and target != name:
                continue
            return rule
        return None

    def rpc(
        self, module: str, name: str, extensions: frozenset[tuple[str, str]] = frozenset()
    ) -> bool:
        """May the user invoke this protocol operation? (§3.4.4)"""
        if self.unrestricted or (module == NETCONF_MODULE and name == "close-session"):
            return True
        rule = self._first("rpc", module, name, "exec")
        if rule is not None:
            return rule.permit
        if DENY_ALL in extensions or (module == NETCONF_MODULE and name in BASE_DENY_ALL):
            return False
        return self.policy.exec_default

    def notification(
        self, module: str, name: str, extensions: frozenset[tuple[str, str]] = frozenset()
    ) -> bool:
        """May the user receive this notification? (§3.4.6)"""
        if self.unrestricted or name in ALWAYS_SENT:
            return True
        rule = self._first("notification", module, name, "read")
        if rule is not None:
            return rule.permit
        if DENY_ALL in extensions:
            return False
        return self.policy.read_default

    def data(self, path: Sequence[DataStep], access: str, deny: str | None = None) -> bool:
        """May the user have ``access`` (read, create, update, delete) to the
        data node at ``path``?  ``deny`` is "all" or "write" when the node or
        an ancestor carries nacm:default-deny-all / -write (§3.4.5)."""
        if self.unrestricted:
            return True
        rule = self._data_rule(path, access)
        if rule is not None:
            return rule.permit
        if deny == "all" or (deny == "write" and access != "read"):
            return False
        return self.policy.read_default if access == "read" else self.policy.write_default

    def action(self, path: Sequence[DataStep]) -> bool:
        """May the user invoke the action at ``path`` (its last step)?
        §3.4.5: "exec" on the action node, exec-default when no rule says."""
        if self.unrestricted:
            return True
        rule = self._data_rule(path, "exec")
        return rule.permit if rule is not None else self.policy.exec_default

    def _data_rule(self, path: Sequence[DataStep], access: str) -> Rule | None:
        """The first data rule for ``access`` to the node at ``path``."""
        module = path[-1].module if path else ""
        rules = self.read_rules if access == "read" else self.rules
        for rule in rules:
            if rule.kind not in (None, "data") or not rule.allows(access):
                continue
            if rule.module != "*" and rule.module != module:
                continue
            if rule.path is not None and not _path_covers(rule.path, path):
                continue
            return rule
        return None


def permits_notification(
    nacm: Node | None,
    user: str,
    module: str,
    name: str,
    recovery: bool | None = None,
    schema: SchemaIndex | None = None,
) -> bool:
    """May ``user`` receive notification ``module:name``, given the /nacm
    subtree of running?  (RFC 8341 §3.4.6; a False must also be counted with
    ``Counters.denied_notification``.)  ``recovery`` defaults to "``user``
    is the recovery user (admin)"."""
    if recovery is None:
        recovery = user == RECOVERY_USER
    access = Access(policy_of(nacm, schema), user, recovery)
    return event_permitted(access, module, name, schema)


def event_permitted(access: Access, module: str, name: str, schema: SchemaIndex | None) -> bool:
    """``access.notification`` with the notification's own default-deny
    statements looked up in ``schema``: what the notification sender asks."""
    extensions: frozenset[tuple[str, str]] = frozenset()
    if schema is not None:
        info = schema.modules.get(module)
        snode = schema.notifications.get((info.namespace, name)) if info is not None else None
        extensions = snode.extensions if snode is not None else frozenset()
    return access.notification(module, name, extensions)


# -- data trees ----------------------------------------------------------------


def default_deny(snode: SchemaNode, inherited: str | None = None) -> str | None:
    """ "all", "write" or None for ``snode``, given what its parent inherited."""
    if inherited == "all" or DENY_ALL in snode.extensions:
        return "all"
    if inherited == "write" or DENY_WRITE in snode.extensions:
        return "write"
    return inherited


def _data_step(snode: SchemaNode, key: Key | None = None, value: str | None = None) -> DataStep:
    keys: tuple[tuple[str, str], ...] = ()
    if key is not None:
        keys = tuple((k[1], v) for k, v in zip(snode.keys, key, strict=False))
    elif value is not None:
        keys = ((".", value),)
    return DataStep(snode.module, snode.prefix, snode.name, keys)


class _Pruner:
    """Read filtering of a data tree (§3.4.5): a node the user may not read
    is left out with its subtree, unless a descendant is readable (then the
    node stays as the way to it, with the keys of a list entry)."""

    def __init__(self, access: Access) -> None:
        self.access = access

    def node(
        self, node: Node, snode: SchemaNode, path: tuple[DataStep, ...], deny: str | None
    ) -> Node:
        children: dict[tuple[str, str], Child] = {}
        changed = False
        for qname, child in node.items():
            csn = snode.child(*qname)
            if csn is None:
                children[qname] = child
                continue
            kept = self.child(child, csn, path, default_deny(csn, deny))
            if kept is not child:
                changed = True
            if kept is not None:
                children[qname] = kept
        return Node(children) if changed else node

    def child(
        self, child: Child, csn: SchemaNode, path: tuple[DataStep, ...], deny: str | None
    ) -> Child | None:
        if not self.access.read_rules and deny != "all" and not denies_all_below(csn):
            # no rule can say otherwise: the whole subtree follows read-default
            return child if self.access.policy.read_default else None
        if isinstance(child, ListNode):
            entries: dict[Key, Node] = {}
            for key, entry in child.items():
                kept = self.entry(entry, csn, (*path, _data_step(csn, key)), deny, key)
                if kept is not None:
                    entries[key] = kept
            return ListNode(entries, child.ordered) if entries else None
        if isinstance(child, LeafList):
            values = tuple(
                v
                for v in child.values
                if self.access.data((*path, _data_step(csn, value=v)), "read", deny)
            )
            return LeafList(values, child.ordered) if values else None
        here = (*path, _data_step(csn))
        if isinstance(child, Node):
            return self.entry(child, csn, here, deny, None)
        return child if self.access.data(here, "read", deny) else None

    def entry(
        self,
        node: Node,
        snode: SchemaNode,
        here: tuple[DataStep, ...],
        deny: str | None,
        key: Key | None,
    ) -> Node | None:
        inner = self.node(node, snode, here, deny)
        readable = self.access.data(here, "read", deny)
        if not readable and all(qname in snode.keys for qname, _ in inner.items()):
            return None
        if key is None:
            return inner
        # an entry is shown with its keys, also as the way to a readable descendant
        keys = {k: v for k in snode.keys if (v := node.get(k)) is not None}
        return Node({**keys, **dict(inner.items())})


@functools.lru_cache(maxsize=4096)
def denies_all_below(snode: SchemaNode) -> bool:
    """Does any node of this schema subtree carry nacm:default-deny-all?
    Once per schema node (a schema is not changed once built)."""
    return DENY_ALL in snode.extensions or any(denies_all_below(c) for c in snode.children.values())


def subtree_facts(snode: SchemaNode) -> tuple[frozenset[str], bool]:
    """The modules whose nodes are in the schema subtree of ``snode`` (it
    and what augments it) and whether any of them carries
    nacm:default-deny-all: what ``reads_everything`` needs to know."""
    return frozenset(node.module for node in subtree(snode)), denies_all_below(snode)


def reads_everything(access: Access, modules: frozenset[str], sensitive: bool) -> bool:
    """Whether ``access`` may read every node of a subtree whose nodes are
    of ``modules`` and of which some node carries default-deny-all when
    ``sensitive`` (``subtree_facts``): read-default is permit and no read
    rule of the user's denies for one of those modules (a rule that
    permits only says what the default says).  Then the subtree need not
    be pruned node by node (§3.4.5 would keep all of it)."""
    if access.unrestricted:
        return True
    if not access.policy.read_default or sensitive:
        return False
    return not any(
        not rule.permit and (rule.module == "*" or rule.module in modules)
        for rule in access.read_rules
    )


def prune(tree: Node, schema: SchemaIndex, access: Access) -> Node:
    """``tree`` without the nodes ``access`` may not read (config and state)."""
    if access.unrestricted:
        return tree
    return _Pruner(access).node(tree, schema.root, (), None)


# -- writes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """One node a change creates, updates or deletes."""

    access: str
    path: tuple[DataStep, ...]
    deny: str | None
    where: str
    """Instance-identifier with module prefixes, for error-path."""


def writes(old: Node, new: Node, schema: SchemaIndex) -> Iterator[Write]:
    """Every data node that differs between two datastore trees (RFC 8341
    §3.4.5: the exact nodes that are different, each with the access it
    needs).  Shared subtrees are skipped by identity."""
    yield from _node_writes(old, new, schema.root, (), "", None)


def _node_writes(
    old: Node | None,
    new: Node | None,
    snode: SchemaNode,
    path: tuple[DataStep, ...],
    where: str,
    deny: str | None,
) -> Iterator[Write]:
    if old is new:
        return
    olds = dict(old.items()) if old is not None else {}
    news = dict(new.items()) if new is not None else {}
    for qname in dict.fromkeys([*olds, *news]):
        csn = snode.child(*qname)
        if csn is None or not csn.config:
            continue
        before, after = olds.get(qname), news.get(qname)
        if before is after:
            continue
        cdeny = default_deny(csn, deny)
        if csn.keyword == "list":
            yield from _list_writes(before, after, csn, path, where, cdeny)
        elif csn.keyword == "leaf-list":
            bvals = before.values if isinstance(before, LeafList) else ()
            avals = after.values if isinstance(after, LeafList) else ()
            for value, access in [(v, "delete") for v in bvals if v not in avals] + [
                (v, "create") for v in avals if v not in bvals
            ]:
                step_ = _data_step(csn, value=value)
                text = f"{where}/{csn.prefix}:{csn.name}[.={quote(value)}]"
                yield Write(access, (*path, step_), cdeny, text)
        else:
            here = (*path, _data_step(csn))
            text = where + step(csn)
            access = "create" if before is None else "delete" if after is None else "update"
            if csn.keyword == "container":
                if access != "update":
                    yield Write(access, here, cdeny, text)
                yield from _node_writes(
                    before if isinstance(before, Node) else None,
                    after if isinstance(after, Node) else None,
                    csn,
                    here,
                    text,
                    cdeny,
                )
            elif before != after:
                yield Write(access, here, cdeny, text)


def _list_writes(
    before: Child | None,
    after: Child | None,
    csn: SchemaNode,
    path: tuple[DataStep, ...],
    where: str,
    deny: str | None,
) -> Iterator[Write]:
    olds = before if isinstance(before, ListNode) else ListNode()
    news = after if isinstance(after, ListNode) else ListNode()
    moved: set[Key] = set()
    if csn.user_ordered:
        old_keys, new_keys = list(olds.keys()), list(news.keys())
        common_old = [k for k in old_keys if k in news]
        common_new = [k for k in new_keys if k in olds]
        moved = {a for a, b in zip(common_old, common_new, strict=True) if a != b}
    for key in dict.fromkeys([*olds.keys(), *news.keys()]):
        o, n = olds.get(key), news.get(key)
        if o is n and key not in moved:
            continue
        here = (*path, _data_step(csn, key))
        text = where + step(csn, key)
        if o is None or n is None or key in moved:
            yield Write(
                "create" if o is None else "delete" if n is None else "update", here, deny, text
            )
        yield from _node_writes(o, n, csn, here, text, deny)


def check_writes(access: Access, old: Node, new: Node, schema: SchemaIndex) -> ConfigError | None:
    """The first change ``access`` does not allow, as an access-denied error."""
    if access.unrestricted:
        return None
    for write in writes(old, new, schema):
        if not access.data(write.path, write.access, write.deny):
            return ConfigError(
                "access-denied",
                f"{write.access} access to {write.where} is denied for user {access.user!r}",
                path=write.where,
                type="application",
            )
    return None


# -- counters ----------------------------------------------------------------------


class Counters:
    """/nacm/denied-* (config false), since the daemon started; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.operations = 0
        self.data_writes = 0
        self.notifications = 0

    def denied_operation(self) -> None:
        with self._lock:
            self.operations += 1

    def denied_data_write(self) -> None:
        with self._lock:
            self.data_writes += 1

    def denied_notification(self) -> None:
        with self._lock:
            self.notifications += 1

    def state(self) -> Node:
        """The counters as a state tree, to merge into <get>."""
        with self._lock:
            values = {
                "denied-operations": self.operations,
                "denied-data-writes": self.data_writes,
                "denied-notifications": self.notifications,
            }
        return Node({_q("nacm"): Node({_q(k): str(v) for k, v in values.items()})})
