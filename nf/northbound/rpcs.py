"""The RPC layer: one NETCONF message in, one <rpc-reply> out (RFC 6241 §4, §7).

This replaces the ``netconf`` library's dispatcher, which accepts rpcs
without message-id, closes sessions on malformed XML, ignores unqualified
filter attributes and kills the caller on kill-session.  It runs in the
session's thread; everything that touches configuration state is a
coroutine of ``Datastores`` (or of its parts in ``nf.store``) called through
the portal, so this module holds no shared state of its own.  The NETCONF
rules of the options live here: which datastores an operation takes, and
what test-option and error-option ask of the store.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from lxml import etree

from nf.config.codec import NC_NS, TooBig, parse, parse_xml, render, split_tag
from nf.config.errors import ConfigError
from nf.config.tree import Node, merge
from nf.config.validate import complete
from nf.northbound.datastores import Datastores
from nf.northbound.defaults import MODES, WITH_DEFAULTS_NS, mark_defaults
from nf.northbound.errors import YANG_NS, rpc_errors
from nf.northbound.filters import Evaluate, FilterError, apply_filter, has_element_children
from nf.northbound.monitoring import SchemaRequestError, get_schema
from nf.northbound.nacm import (
    NACM_NS,
    NETCONF_MODULE,
    RECOVERY_USER,
    Access,
    Counters,
    DataStep,
    Policy,
    check_writes,
    event_permitted,
    policy_of,
    prune,
)
from nf.northbound.nmda import (
    NMDA_NS,
    OPERATIONAL,
    ORIGIN_NS,
    ORIGINS,
    WRITABLE,
    NmdaError,
    OriginFilter,
    View,
    bad_value,
    datastore_of,
    identity,
)
from nf.northbound.notifications import (
    Notifications,
    Outbox,
    SubscriptionError,
    parse_request,
)
from nf.northbound.selection import preselect
from nf.northbound.wholeget import WholeGet, splice
from nf.schema import MAIN_MODULE, SchemaIndex, SchemaNode
from nf.store.confirmed_state import CommitRequest, parse_timeout
from nf.store.engine import Authorize

log = logging.getLogger(__name__)
T = TypeVar("T")

NC = f"{{{NC_NS}}}"
EDITABLE = ("running", "candidate")
"""What edit-config can target (startup only through copy-config)."""
TEST_OPTIONS = frozenset({"test-then-set", "set", "test-only"})
"""test-option: only test-only differs here.  Running is always validated
whole; an edit of the candidate checks the syntax only, whatever the
test-option, since RFC 7950 §8.3.3 validates the candidate at <validate>
and <commit>."""
ERROR_OPTIONS = frozenset({"stop-on-error", "continue-on-error", "rollback-on-error"})
"""error-option: an edit is all or nothing but for continue-on-error,
which applies what it can and reports the rest."""


class Portal(Protocol):
    """anyio's BlockingPortal, as far as this module uses it."""

    def call(self, func: Callable[..., Any], *args: Any) -> Any: ...


class SessionControl(Protocol):
    """What the RPC layer may do to sessions (kill-session, close-session)."""

    def kill(self, session_id: int, by: int | None = None) -> bool:
        """Terminate another session (``by`` kills it); False when there is none."""


class RpcError(Exception):
    """Errors that end one rpc with an <rpc-error> reply."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def _err(tag: str, message: str, error_type: str = "protocol", **info: str) -> RpcError:
    return RpcError(
        [
            ConfigError(
                tag,
                message,
                type=error_type,
                info=tuple((k.replace("_", "-"), v) for k, v in info.items()),
            )
        ]
    )


@dataclass
class Reply:
    """An rpc-reply body and what the session must do after sending it."""

    body: list[etree._Element] = field(default_factory=list)
    raw: Sequence[bytes] | None = None
    """The body already serialised, in pieces (``WholeGet``), instead of ``body``."""
    close: bool = False
    subscription: Outbox | None = None
    """create-subscription: the session starts sending it after the reply."""


@dataclass
class Context:
    """Everything an RPC handler needs; one per daemon, shared by sessions."""

    schema: SchemaIndex
    datastores: Datastores
    portal: Portal
    sessions: SessionControl
    monitor: Callable[[dict[str, tuple[int, str]]], Node] | None = None
    """Produces /netconf-state (RFC 6022) given the datastore locks."""
    notifications: Notifications | None = None
    """The NETCONF event stream (RFC 5277); None: create-subscription is refused."""
    nacm_counters: Counters = field(default_factory=Counters)
    """/nacm/denied-* (RFC 8341), reported by <get>."""
    costly_xpath: Evaluate | None = None
    """Where XPath filters that may cost more than linear time run, so that
    they can be stopped (the daemon's XPathSandbox); None: in this thread."""
    recovery_user: str = RECOVERY_USER
    """The user whose sessions are RFC 8341 recovery sessions: never restricted,
    so the operator cannot lock themselves out."""
    whole: WholeGet = field(init=False, repr=False)
    """Unfiltered <get>/<get-config> replies as bytes (see ``WholeGet``)."""
    recovery_access: Access = field(init=False, repr=False)
    """The recovery user's decisions (none restricted), made once: every
    rpc of theirs asked for them, a twentieth of a get-config's work."""
    _policy: tuple[object, Policy] | None = field(default=None, repr=False)
    _accesses: tuple[Policy, dict[str, Access]] | None = field(default=None, repr=False)
    _rendered: list[tuple[Node, etree._Element]] = field(default_factory=list, repr=False)
    _completed: list[tuple[Node, Node]] = field(default_factory=list, repr=False)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.whole = WholeGet(self.schema)
        self.recovery_access = Access(Policy(), self.recovery_user, recovery=True)

    def policy(self, running: Node) -> Policy:
        """The NACM policy of this running tree, parsed once per /nacm subtree."""
        nacm = running.get((NACM_NS, "nacm"))
        cached = self._policy
        if cached is not None and cached[0] is nacm:
            return cached[1]
        policy = policy_of(nacm if isinstance(nacm, Node) else None, self.schema)
        self._policy = (nacm, policy)
        return policy

    def access(self, running: Node, user: str) -> Access:
        """``user``'s NACM decisions under running's /nacm, made once per
        policy and user: every rpc asks for them, and making them (the
        user's groups, the rules that apply) was a tenth of a get-config's
        work.  An Access is not changed once made; a new /nacm is a new
        policy, and the decisions are made again."""
        policy = self.policy(running)
        cached = self._accesses
        if cached is None or cached[0] is not policy:
            cached = self._accesses = (policy, {})
        access = cached[1].get(user)
        if access is None:
            access = cached[1][user] = Access(policy, user)
        return access

    def complete(self, tree: Node) -> Node:
        """``tree`` with every default in use, shared like ``render``'s:
        operational and the with-defaults modes other than explicit complete
        running on every read, and completing costs more than rendering
        (2000 channels: 0.6 s)."""
        return self._last(self._completed, tree, lambda t: complete(t, self.schema))

    def render(self, tree: Node) -> etree._Element:
        """``tree`` as a <data> element, shared: callers must not modify it.

        Configuration changes far less often than it is read, and trees are
        immutable, so the last rendering is kept and reused while its tree is
        the one asked for (a 1000-channel get-config drops from ~18 to ~3 ms).
        """
        return self._last(self._rendered, tree, lambda t: render(t, self.schema))

    def _last(self, slot: list[tuple[Node, T]], tree: Node, build: Callable[[Node], T]) -> T:
        """``build(tree)``, or what it gave the last time for this very tree
        (``slot`` holds that one pair)."""
        with self._cache_lock:
            if slot and slot[0][0] is tree:
                return slot[0][1]
        made = build(tree)
        with self._cache_lock:
            slot[:] = [(tree, made)]
        return made


def ok() -> list[etree._Element]:
    return [etree.Element(f"{NC}ok")]


def _children(op: etree._Element) -> dict[str, etree._Element]:
    """The parameters of an operation, by local name, refusing unknown ones."""
    params: dict[str, etree._Element] = {}
    for child in op:
        if not isinstance(child.tag, str):
            continue
        ns, name = split_tag(child.tag)
        if ns == WITH_DEFAULTS_NS and name == "with-defaults":
            pass  # RFC 6243 §4.5: an augmenting parameter of retrieval operations
        elif ns != NC_NS:
            raise _err(
                "unknown-element",
                f'unexpected parameter "{name}" in <{split_tag(op.tag)[1]}>',
                bad_element=name,
            )
        if name in params:
            raise _err("bad-element", f'parameter "{name}" given twice', bad_element=name)
        params[name] = child
    return params


def _only(params: dict[str, etree._Element], op: str, allowed: set[str]) -> None:
    for name in params:
        if name not in allowed:
            raise _err("unknown-element", f'<{op}> has no parameter "{name}"', bad_element=name)


def _required(params: dict[str, etree._Element], name: str) -> etree._Element:
    elem = params.get(name)
    if elem is None:
        raise _err("missing-element", f'parameter "{name}" is missing', bad_element=name)
    return elem


def _with_defaults(params: dict[str, etree._Element]) -> str:
    # "explicit" is our basic mode; a bad mode is an application error
    return _text(params, "with-defaults", MODES, "explicit", "application")


NMDA_TARGETS = {"running": "running", "candidate": "candidate", "startup": "startup"}
"""The datastores ietf-netconf-nmda's <datastore> may name in <lock> and
<unlock> (RFC 8526 §3.3: the writable ones, and startup, which copy-config
writes)."""
NMDA_SOURCES = {**NMDA_TARGETS, "intended": "running"}
"""... and in <validate>: the configuration datastores (intended is running)."""


def _datastore(
    elem: etree._Element, allow_config: bool = False, nmda: dict[str, str] | None = None
) -> str | etree._Element:
    """The datastore named inside <source>/<target>, or an inline <config>;
    with ``nmda``, also an ietf-netconf-nmda <datastore> identity among its
    keys (RFC 8526 augments <lock>, <unlock> and <validate> so)."""
    kids = [c for c in elem if isinstance(c.tag, str)]
    where = split_tag(elem.tag)[1]
    if len(kids) != 1:
        raise _err("missing-element", f"<{where}> needs exactly one datastore", bad_element=where)
    ns, name = split_tag(kids[0].tag)
    if nmda is not None and ns == NMDA_NS and name == "datastore":
        try:
            return nmda[datastore_of(kids[0], frozenset(nmda), "used")]
        except NmdaError as exc:
            raise RpcError([exc.error]) from exc
    if ns != NC_NS:
        raise _err(
            "unknown-namespace", f'"{name}" is not a datastore', bad_element=name, bad_namespace=ns
        )
    if name == "config" and allow_config:
        return kids[0]
    if name == "url":
        raise _err(
            "operation-not-supported", "the :url capability is not supported", bad_element="url"
        )
    if name not in ("running", "candidate", "startup"):
        raise _err("bad-element", f'unknown datastore "{name}"', bad_element=name)
    return name


def _text(
    params: dict[str, etree._Element],
    name: str,
    allowed: frozenset[str],
    default: str,
    error_type: str = "protocol",
) -> str:
    """The enumerated parameter ``name`` (``default`` when absent)."""
    elem = params.get(name)
    if elem is None:
        return default
    value = (elem.text or "").strip()
    if value not in allowed:
        raise _err(
            "invalid-value",
            f'{name} "{value}" is not one of {", ".join(sorted(allowed))}',
            error_type,
            bad_element=name,
        )
    return value


def _string(params: dict[str, etree._Element], name: str) -> str | None:
    """A string parameter (ietf-netconf ``type string``: taken as sent)."""
    elem = params.get(name)
    return None if elem is None else (elem.text or "")


def _inline_config(ctx: Context, elem: etree._Element) -> Node:
    tree, errors = parse(elem, ctx.schema)
    if errors:
        raise RpcError(errors)
    return tree


def _unknown_datastore(name: str, element: str) -> RpcError:
    """A datastore that exists nowhere or not for this operation."""
    return _err(
        "invalid-value",
        f'datastore "{name}" is not supported here (running, candidate)',
        bad_element=element,
    )


def _check(errors: list[ConfigError]) -> list[etree._Element]:
    if errors:
        raise RpcError(errors)
    return ok()


class Handlers:
    """One method per operation; each returns the reply body or raises RpcError."""

    def __init__(self, ctx: Context, session_id: int, user: str) -> None:
        self.ctx = ctx
        self.sid = session_id
        self.user = user
        self._access: Access | None = None

    def call(self, coroutine: Callable[..., Any], *args: Any) -> Any:
        return self.ctx.portal.call(coroutine, *args)

    # -- access control (RFC 8341) ---------------------------------------------
    @property
    def access(self) -> Access:
        """This user's NACM decisions under the /nacm of running, read once per rpc."""
        if self._access is None:
            if self.user == self.ctx.recovery_user:
                self._access = self.ctx.recovery_access
            else:
                running = self.ctx.datastores.config("running")
                self._access = self.ctx.access(running, self.user)
        return self._access

    def notification_access(self) -> Callable[[etree._Element], bool] | None:
        """§3.4.6 for this session's subscription: whether an event may be
        sent, under the /nacm of running when the event goes out (a denied
        one is dropped and counted in denied-notifications); None for the
        recovery user."""
        if self.user == self.ctx.recovery_user:
            return None
        ctx, user = self.ctx, self.user

        def permits(content: etree._Element) -> bool:
            ns, name = split_tag(content.tag)
            info = ctx.schema.module_by_namespace(ns)
            module = info.name if info is not None else ""
            # running is an immutable tree: reading the attribute from the
            # publishing thread is safe
            access = ctx.access(ctx.datastores.running, user)
            if event_permitted(access, module, name, ctx.schema):
                return True
            ctx.nacm_counters.denied_notification()
            return False

        return permits

    def authorize_rpc(self, module: str, name: str, rpc: SchemaNode | None) -> None:
        """§3.4.4: refuse a protocol operation the user may not execute; the
        error-path names the operation (/nc:rpc/nc:edit-config)."""
        extensions = rpc.extensions if rpc is not None else frozenset()
        if not self.access.rpc(module, name, extensions):
            self.ctx.nacm_counters.denied_operation()
            prefix = rpc.prefix if rpc is not None else "nc"
            raise RpcError(
                [
                    ConfigError(
                        "access-denied",
                        f"user {self.user!r} may not execute <{name}>",
                        path=f"/nc:rpc/{prefix}:{name}",
                        type="protocol",
                    )
                ]
            )

    def authorize_writes(self) -> Authorize | None:
        """§3.4.5: the check of every changed node, for the datastores; None
        when this user is not restricted (nothing to walk)."""
        access = self.access
        if access.unrestricted:
            return None

        def authorize(old: Node, new: Node) -> list[ConfigError]:
            denied = check_writes(access, old, new, self.ctx.schema)
            if denied is None:
                return []
            self.ctx.nacm_counters.denied_data_write()
            return [denied]

        return authorize

    # -- retrieval ------------------------------------------------------------
    def _data(self, source: str, params: dict[str, etree._Element], with_state: bool) -> Reply:
        mode = _with_defaults(params)
        flt = params.get("filter")
        access = self.access
        if flt is None and mode == "explicit" and self.ctx.whole.readable(access):
            raw = self._whole(source, with_state, None if access.unrestricted else access)
            if raw is not None:
                return Reply(raw=raw)
        return Reply([self._retrieve(source, with_state, flt, mode)])

    def _retrieve(
        self,
        source: str,
        with_state: bool,
        flt: etree._Element | None,
        mode: str,
        view: View | None = None,
    ) -> etree._Element:
        """A datastore (with state for <get> and operational) as a <data>
        element of the reply's own: with-defaults ``mode``, NACM read rules,
        ``view``'s shaping (get-data), then the filter."""
        # a filter that names entries by key: read and render only those
        selection = preselect(flt, self.ctx.schema)
        if with_state:
            tree, state = self.call(self.ctx.datastores.snapshot, source, True, selection)
        else:  # configuration alone: read here (Datastores.config)
            tree, state = self.ctx.datastores.config(source, selection), None
        others = selection is None or not selection.only_ours  # other top-level state
        if with_state and others and self.ctx.monitor is not None:
            locks = self.call(self.ctx.datastores.locks.info)
            state = merge(state or Node(), self.ctx.monitor(locks))
        if with_state and others:
            state = merge(state or Node(), self.ctx.nacm_counters.state())
        configured = tree
        in_use = view is not None and view.operational
        if mode != "explicit" or in_use:
            # (a selection's small tree is not cached: it would push out running's)
            tree = self.ctx.complete(tree) if selection is None else complete(tree, self.ctx.schema)
        if not self.access.unrestricted:
            # §3.4.5: what the user may not read is left out, silently
            tree = prune(tree, self.ctx.schema, self.access)
            if state is not None:
                state = prune(state, self.ctx.schema, self.access)
        if view is not None:
            return view.shape(
                self.ctx.schema,
                merge(tree, state) if state is not None else tree,
                configured,
                flt,
                self.ctx.costly_xpath,
            )
        if (state is not None and len(state)) or mode != "explicit" or selection is not None:
            # (a selection's small tree is not cached: it would push out running's)
            data = render(merge(tree, state) if state is not None else tree, self.ctx.schema)
            mark_defaults(data, self.ctx.schema, mode)
            shared = False
        else:
            data = self.ctx.render(tree)
            shared = True
        if flt is not None:
            try:
                return apply_filter(data, flt, self.ctx.schema, self.ctx.costly_xpath)
            except FilterError as exc:
                raise RpcError(exc.errors) from exc
        # the reply takes ownership of its body: never hand out the shared one
        return copy.deepcopy(data) if shared else data

    def _whole(self, source: str, with_state: bool, access: Access | None) -> list[bytes] | None:
        """The common case, everything for a user who reads all of
        serial-over-ip (``access``, pruning the rest; None: unrestricted),
        from bytes kept per entry; None: not this case (the general path)."""
        if with_state:
            tree, snapshot, model, locks = self.call(self.ctx.datastores.read, source, with_state)
        else:
            # configuration alone is read here, without a hop to the loop
            # (Datastores.config; the hop was a third of a get-config)
            datastores = self.ctx.datastores
            tree, snapshot, model = datastores.config(source), None, datastores.engine.running_model
        rest: Node | None = None
        if with_state:
            rest = self.ctx.nacm_counters.state()
            if self.ctx.monitor is not None:
                rest = merge(self.ctx.monitor(locks), rest)
        return self.ctx.whole.data(tree, rest, snapshot, model, access)

    def get(self, op: etree._Element) -> Reply:
        params = _children(op)
        _only(params, "get", {"filter", "with-defaults"})
        return self._data("running", params, with_state=True)

    def get_config(self, op: etree._Element) -> Reply:
        params = _children(op)
        _only(params, "get-config", {"source", "filter", "with-defaults"})
        source = _datastore(_required(params, "source"))
        assert isinstance(source, str)
        if not self.ctx.datastores.known(source):
            raise _err(
                "invalid-value", f'datastore "{source}" is not supported', bad_element=source
            )
        return self._data(source, params, with_state=False)

    # -- NMDA (RFC 8526) -----------------------------------------------------------
    def _nmda_datastores(self, writable: bool) -> frozenset[str]:
        names = self.ctx.datastores.nmda_names()
        return frozenset(n for n in names if not writable or n in WRITABLE)

    def get_data(self, op: etree._Element) -> Reply:
        """<get-data>: any datastore, with the filters ANDed (RFC 8526 §3.1.1)."""
        params, repeated = _nmda_children(op, {"origin-filter", "negated-origin-filter"})
        _only(
            params,
            "get-data",
            {
                "datastore",
                "subtree-filter",
                "xpath-filter",
                "config-filter",
                "origin-filter",
                "negated-origin-filter",
                "max-depth",
                "with-origin",
                "with-defaults",
            },
        )
        try:
            name = datastore_of(
                _required(params, "datastore"), self._nmda_datastores(False), "read"
            )
            view = _view(params, repeated, name == OPERATIONAL)
        except NmdaError as exc:
            raise RpcError([exc.error]) from exc
        flt = _nmda_filter(params)
        source = "running" if name in ("intended", OPERATIONAL) else name
        try:
            data = self._retrieve(source, name == OPERATIONAL, flt, view.mode, view)
        except FilterError as exc:
            raise RpcError(exc.errors) from exc
        return Reply([data])

    def edit_data(self, op: etree._Element) -> Reply:
        """<edit-data>: edit-config of running or the candidate, all or
        nothing (RFC 8526 §3.2: the datastore is restored on any error)."""
        params, _ = _nmda_children(op, set())
        _only(params, "edit-data", {"datastore", "default-operation", "config", "url"})
        try:
            target = datastore_of(
                _required(params, "datastore"), self._nmda_datastores(True), "edited"
            )
        except NmdaError as exc:
            raise RpcError([exc.error]) from exc
        # RFC 8526 §3.2: on an error the datastore is as it was (stop, roll back)
        return self._edit(target, params)

    # -- editing ----------------------------------------------------------------
    def edit_config(self, op: etree._Element) -> Reply:
        params = _children(op)
        _only(
            params,
            "edit-config",
            {"target", "default-operation", "test-option", "error-option", "config", "url"},
        )
        target = _datastore(_required(params, "target"))
        test_option = _text(params, "test-option", TEST_OPTIONS, "test-then-set")
        error_option = _text(params, "error-option", ERROR_OPTIONS, "stop-on-error")
        assert isinstance(target, str)
        if target not in EDITABLE:
            raise _unknown_datastore(target, "target")
        return self._edit(
            target,
            params,
            partial=error_option == "continue-on-error",
            dry_run=test_option == "test-only",
        )

    def _edit(
        self,
        target: str,
        params: dict[str, etree._Element],
        *,
        partial: bool = False,
        dry_run: bool = False,
    ) -> Reply:
        """<edit-config> and <edit-data>: ``params``' <config> into ``target``."""
        if "url" in params:
            raise _err(
                "operation-not-supported", "the :url capability is not supported", bad_element="url"
            )
        config = _required(params, "config")
        default_op = _text(
            params, "default-operation", frozenset({"merge", "replace", "none"}), "merge"
        )
        datastores = self.ctx.datastores
        authorize = self.authorize_writes()

        async def edit() -> list[ConfigError]:
            return await datastores.edit(
                self.sid,
                target,
                config,
                default_op,
                partial=partial,
                dry_run=dry_run,
                authorize=authorize,
            )

        return Reply(_check(self.call(edit)))

    def validate(self, op: etree._Element) -> Reply:
        params = _children(op)
        _only(params, "validate", {"source"})
        source = _datastore(_required(params, "source"), allow_config=True, nmda=NMDA_SOURCES)
        if isinstance(source, etree._Element):
            tree = _inline_config(self.ctx, source)
            return Reply(_check(self.call(self.ctx.datastores.validate, tree)))
        if not self.ctx.datastores.known(source):
            raise _unknown_datastore(source, "source")
        return Reply(_check(self.call(self.ctx.datastores.validate, source)))

    def commit(self, op: etree._Element) -> Reply:
        """<commit>, with the :confirmed-commit:1.1 parameters (RFC 6241 §8.4.5.1)."""
        params = _children(op)
        _only(params, "commit", {"confirmed", "confirm-timeout", "persist", "persist-id"})
        timeout: int | None = None
        if "confirm-timeout" in params:
            parsed = parse_timeout(params["confirm-timeout"].text or "")
            if isinstance(parsed, ConfigError):
                raise RpcError([parsed])
            timeout = parsed
        request = CommitRequest(
            confirmed="confirmed" in params,
            timeout=timeout,
            persist=_string(params, "persist"),
            persist_id=_string(params, "persist-id"),
        )
        return Reply(
            _check(
                self.call(self.ctx.datastores.commit, self.sid, request, self.authorize_writes())
            )
        )

    def cancel_commit(self, op: etree._Element) -> Reply:
        """<cancel-commit> (RFC 6241 §8.4.4.1)."""
        params = _children(op)
        _only(params, "cancel-commit", {"persist-id"})
        persist_id = _string(params, "persist-id")
        return Reply(_check(self.call(self.ctx.datastores.cancel_commit, self.sid, persist_id)))

    def discard_changes(self, op: etree._Element) -> Reply:
        _only(_children(op), "discard-changes", set())
        return Reply(_check(self.call(self.ctx.datastores.discard_changes, self.sid)))

    def copy_config(self, op: etree._Element) -> Reply:
        params = _children(op)
        _only(params, "copy-config", {"source", "target"})
        target = _datastore(_required(params, "target"))
        source = _datastore(_required(params, "source"), allow_config=True)
        src: str | Node = (
            _inline_config(self.ctx, source) if isinstance(source, etree._Element) else source
        )
        assert isinstance(target, str)
        datastores = self.ctx.datastores
        if not datastores.known(target):
            raise _unknown_datastore(target, "target")
        if isinstance(src, str):
            if not datastores.known(src):
                raise _unknown_datastore(src, "source")
            if src == target:
                raise _err(
                    "invalid-value",
                    "source and target are the same datastore",
                    bad_element="target",
                )
        # RFC 8341 §3.2, the <copy-config> operation (as in RFC 6536): "If
        # the source of the <copy-config> protocol operation is the running configuration
        # datastore and the target is the startup configuration datastore,
        # the client is only required to have permission to execute the
        # <copy-config> protocol operation" (checked before dispatch): saving
        # what already runs is no new write, so no data rule applies
        saving = source == "running" and target == "startup"
        authorize = None if saving else self.authorize_writes()
        return Reply(_check(self.call(datastores.copy, self.sid, src, target, authorize)))

    def delete_config(self, op: etree._Element) -> Reply:
        params = _children(op)
        _only(params, "delete-config", {"target"})
        target = _datastore(_required(params, "target"))
        assert isinstance(target, str)
        datastores = self.ctx.datastores
        if target in EDITABLE:
            raise _err(
                "operation-not-supported",
                f"the {target} datastore cannot be deleted",
                bad_element="target",
            )
        if not datastores.known(target):
            raise _unknown_datastore(target, "target")
        return Reply(
            _check(self.call(datastores.delete_startup, self.sid, self.authorize_writes()))
        )

    # -- locks and sessions ------------------------------------------------------
    def _target(self, op: etree._Element, name: str) -> str:
        params = _children(op)
        _only(params, name, {"target"})
        target = _datastore(_required(params, "target"), nmda=NMDA_TARGETS)
        assert isinstance(target, str)
        if not self.ctx.datastores.known(target):
            raise _unknown_datastore(target, "target")
        return target

    def lock(self, op: etree._Element) -> Reply:
        target = self._target(op, "lock")
        return Reply(_check(self.call(self.ctx.datastores.locks.lock, self.sid, target)))

    def unlock(self, op: etree._Element) -> Reply:
        target = self._target(op, "unlock")
        return Reply(_check(self.call(self.ctx.datastores.locks.unlock, self.sid, target)))

    def close_session(self, op: etree._Element) -> Reply:
        _only(_children(op), "close-session", set())
        # RFC 6241 §7.8: the locks go with the session.  Release them before
        # the <ok>, so that a client told "closed" can lock at once; the
        # session's end releases again, which is harmless.
        self.call(self.ctx.datastores.session_ended, self.sid)
        return Reply(ok(), close=True)

    def kill_session(self, op: etree._Element) -> Reply:
        params = _children(op)
        _only(params, "kill-session", {"session-id"})
        text = (_required(params, "session-id").text or "").strip()
        if not text.isdigit() or int(text) == 0:
            raise _err(
                "invalid-value",
                f'"{text}" is not a session-id',
                "protocol",
                bad_element="session-id",
            )
        target = int(text)
        if target == self.sid:
            raise _err(
                "invalid-value",
                "a session cannot kill itself; use close-session",
                "protocol",
                bad_element="session-id",
            )
        if not self.ctx.sessions.kill(target, self.sid):
            raise _err(
                "invalid-value",
                f"there is no session {target}",
                "protocol",
                bad_element="session-id",
            )
        self.call(self.ctx.datastores.session_ended, target)
        return Reply(ok())

    # -- module RPCs -----------------------------------------------------------------
    def get_schema(self, op: etree._Element) -> Reply:
        try:
            return Reply([get_schema(self.ctx.schema, op)])
        except SchemaRequestError as exc:
            raise RpcError([exc.error]) from exc

    def create_subscription(self, op: etree._Element) -> Reply:
        """RFC 5277 §2.1.1.  The outbox is filled from now on (replay first);
        the session sends its contents once this <ok> is out."""
        hub = self.ctx.notifications
        if hub is None:
            raise _err("operation-not-supported", "notifications are not enabled")
        try:
            request = parse_request(op, hub.clock(), self.ctx.schema)
            outbox = hub.subscribe(self.sid, request, self.notification_access())
        except SubscriptionError as exc:
            raise RpcError([exc.error]) from exc
        return Reply(ok(), subscription=outbox)

    def clear_counters(self, op: etree._Element) -> Reply:
        channel: str | None = None
        for child in op:
            if not isinstance(child.tag, str):
                continue
            ns, name = split_tag(child.tag)
            if ns != self.ctx.schema.modules[MAIN_MODULE].namespace or name != "channel":
                raise _err(
                    "unknown-element",
                    f'clear-counters has no input "{name}"',
                    "application",
                    bad_element=name,
                )
            channel = (child.text or "").strip()
        if channel is not None:
            tree, _ = self.call(self.ctx.datastores.snapshot, "running", False)
            names = _channel_names(self.ctx, tree)
            if channel not in names:
                # RFC 7950 §15.5: error-path is the path to the leafref leaf
                prefix = self.ctx.schema.modules[MAIN_MODULE].prefix
                raise RpcError(
                    [
                        ConfigError(
                            "data-missing",
                            f'there is no channel "{channel}"',
                            path=f"/{prefix}:clear-counters/{prefix}:channel",
                            app_tag="instance-required",
                            info=(("bad-element", "channel"),),
                        )
                    ]
                )
        self.call(self.ctx.datastores.clear_counters, channel)
        return Reply(ok())

    def action(self, op: etree._Element) -> Reply:
        """RFC 7950 §7.15.2: <action> holds the path to the action, whose
        element holds its input.  The module's one action is
        serial-port/send-break."""
        schema = self.ctx.schema
        module = schema.modules[MAIN_MODULE]
        ns, prefix = module.namespace, module.prefix
        top = _only_child(op, "action", (ns, "serial-over-ip"))
        port = _only_child(top, "serial-over-ip", (ns, "serial-port"))
        name = port.findtext(f"{{{ns}}}name")
        act = _only_child(port, "serial-port", None, skip=(ns, "name"))
        if split_tag(act.tag) != (ns, "send-break"):
            raise _unknown("serial-port has no action", act)
        path = f"/{prefix}:serial-over-ip/{prefix}:serial-port[{prefix}:name='{name}']"
        duration = 250
        for child in act:
            if not isinstance(child.tag, str):
                continue
            text = (child.text or "").strip()
            if split_tag(child.tag) != (ns, "duration"):
                raise _unknown("send-break has no input", child)
            if not text.isdigit() or not 1 <= int(text) <= 10000:
                raise RpcError(
                    [
                        ConfigError(
                            "invalid-value",
                            f'duration "{text}" is not 1..10000 milliseconds',
                            path=f"{path}/{prefix}:send-break/{prefix}:duration",
                            type="application",
                        )
                    ]
                )
            duration = int(text)
        steps = (
            DataStep(module.name, prefix, "serial-over-ip"),
            DataStep(module.name, prefix, "serial-port", (("name", name or ""),)),
            DataStep(module.name, prefix, "send-break"),
        )
        if not self.access.action(steps):
            self.ctx.nacm_counters.denied_operation()
            raise RpcError(
                [
                    ConfigError(
                        "access-denied",
                        f"user {self.user!r} may not execute send-break",
                        path=f"{path}/{prefix}:send-break",
                        type="protocol",
                    )
                ]
            )
        tree, _ = self.call(self.ctx.datastores.snapshot, "running", False)
        if name not in _entry_names(self.ctx, tree, "serial-port"):
            raise RpcError(
                [
                    ConfigError(
                        "data-missing",
                        f'there is no serial port "{name}"',
                        path=path,
                        type="application",
                    )
                ]
            )
        problem = self.call(self.ctx.datastores.send_break, name, duration)
        if problem is not None:
            raise _err("operation-failed", problem, "application")
        return Reply(ok())


def _unknown(what: str, elem: etree._Element) -> RpcError:
    name = split_tag(elem.tag)[1]
    return _err("unknown-element", f'{what} "{name}"', "application", bad_element=name)


def _only_child(
    parent: etree._Element,
    what: str,
    expect: tuple[str, str] | None,
    skip: tuple[str, str] | None = None,
) -> etree._Element:
    """The one element child of ``parent`` besides ``skip`` (a list's key
    leaf), which must be ``expect`` if given: the next step of an action's
    path."""
    children = [c for c in parent if isinstance(c.tag, str) and split_tag(c.tag) != skip]
    if len(children) != 1 or (expect is not None and split_tag(children[0].tag) != expect):
        raise _err(
            "operation-not-supported",
            f"<{what}> must hold the path to one action of this server",
            "protocol",
            bad_element=what,
        )
    return children[0]


def _nmda_children(
    op: etree._Element, repeatable: set[str]
) -> tuple[dict[str, etree._Element], dict[str, list[etree._Element]]]:
    """The parameters of an ietf-netconf-nmda operation, by local name:
    the first of each, and all of the leaf-lists ``repeatable``.  They are
    in the module's namespace (with-defaults also in RFC 6243's, as a
    client used to <get-config> writes it) or unqualified."""
    params: dict[str, etree._Element] = {}
    repeated: dict[str, list[etree._Element]] = {}
    for child in op.iterchildren(etree.Element):
        ns, name = split_tag(child.tag)
        if ns not in ("", NMDA_NS) and not (ns == WITH_DEFAULTS_NS and name == "with-defaults"):
            raise _err(
                "unknown-element",
                f'unexpected parameter "{name}" in <{split_tag(op.tag)[1]}>',
                bad_element=name,
            )
        if name in repeatable:
            repeated.setdefault(name, []).append(child)
        elif name in params:
            raise _err("bad-element", f'parameter "{name}" given twice', bad_element=name)
        params.setdefault(name, child)
    return params, repeated


def _one_of(params: dict[str, etree._Element], names: tuple[str, str]) -> None:
    """The cases of a choice exclude each other."""
    if all(n in params for n in names):
        raise _err(
            "bad-element",
            f'"{names[0]}" and "{names[1]}" exclude each other',
            bad_element=names[1],
        )


def _view(
    params: dict[str, etree._Element], repeated: dict[str, list[etree._Element]], operational: bool
) -> View:
    """The shaping parameters of a <get-data>, checked against its datastore."""
    _one_of(params, ("subtree-filter", "xpath-filter"))
    _one_of(params, ("origin-filter", "negated-origin-filter"))
    config_filter: bool | None = None
    if "config-filter" in params:
        text = (params["config-filter"].text or "").strip()
        if text not in ("true", "false"):
            raise bad_value(f'config-filter "{text}" is not a boolean', "config-filter")
        config_filter = text == "true"
    max_depth: int | None = None
    if "max-depth" in params:
        text = (params["max-depth"].text or "").strip()
        if text != "unbounded":
            if not text.isdigit() or not 1 <= int(text) <= 65535:
                raise bad_value(
                    f'max-depth "{text}" is neither 1..65535 nor "unbounded"', "max-depth"
                )
            max_depth = int(text)
    with_origin = "with-origin" in params
    if with_origin and (
        not operational
        or has_element_children(params["with-origin"])
        or (params["with-origin"].text or "").strip()
    ):
        raise bad_value("with-origin is empty, for ds:operational only", "with-origin")
    origins: OriginFilter | None = None
    for name in ("origin-filter", "negated-origin-filter"):
        if name not in repeated:
            continue
        if not operational:
            raise bad_value(f"{name} applies to ds:operational only", name)
        values = set()
        for elem in repeated[name]:
            value = identity(elem, ORIGIN_NS, ORIGINS)
            if value is None:
                raise bad_value(
                    f'{name} "{(elem.text or "").strip()}" is not an identity of ietf-origin',
                    name,
                )
            values.add(value)
        origins = OriginFilter(frozenset(values), name == "negated-origin-filter")
    mode = "explicit"
    if "with-defaults" in params:
        if operational:
            # RFC 8526 §3.1.1.2: no :with-operational-defaults here
            # (operational always shows the values in use)
            raise bad_value("with-defaults is not supported on ds:operational", "with-defaults")
        mode = _with_defaults(params)
    return View(operational, mode, config_filter, with_origin, origins, max_depth)


def _nmda_filter(params: dict[str, etree._Element]) -> etree._Element | None:
    """subtree-filter or xpath-filter as the <filter> of <get> would give it,
    so that both go the way of <get>'s (selection, cost bounds, NACM).

    A filter node left in ietf-netconf-nmda's namespace by a default
    xmlns on <get-data> is unqualified, like one in the base namespace
    under <filter>: no data node lives there.  The same goes for the
    default namespace in scope of an XPath filter."""
    subtree = params.get("subtree-filter")
    if subtree is not None:
        flt = etree.Element(f"{NC}filter", type="subtree")
        for node in subtree.iterchildren(etree.Element):
            copied = copy.deepcopy(node)
            for elem in copied.iter(etree.Element):
                if split_tag(elem.tag)[0] == NMDA_NS:
                    elem.tag = split_tag(elem.tag)[1]
            flt.append(copied)
        return flt
    xpath = params.get("xpath-filter")
    if xpath is not None:
        nsmap = {p: uri for p, uri in xpath.nsmap.items() if not (p is None and uri == NMDA_NS)}
        return etree.Element(
            f"{NC}filter",
            type="xpath",
            select=xpath.text or "",
            nsmap=nsmap,  # type: ignore[arg-type]
        )
    return None


def _channel_names(ctx: Context, tree: Node) -> set[str]:
    return _entry_names(ctx, tree, "channel")


def _entry_names(ctx: Context, tree: Node, list_name: str) -> set[str]:
    """The keys of the module's top-level list ``list_name`` in ``tree``."""
    ns = ctx.schema.modules[MAIN_MODULE].namespace
    top = tree.get((ns, "serial-over-ip"))
    if not isinstance(top, Node):
        return set()
    entries = top.get((ns, list_name))
    from nf.config.tree import ListNode

    return {key[0] for key, _ in entries.items()} if isinstance(entries, ListNode) else set()


BASE_OPERATIONS: dict[str, Callable[[Handlers, etree._Element], Reply]] = {
    "get": Handlers.get,
    "get-config": Handlers.get_config,
    "edit-config": Handlers.edit_config,
    "validate": Handlers.validate,
    "commit": Handlers.commit,
    "cancel-commit": Handlers.cancel_commit,
    "discard-changes": Handlers.discard_changes,
    "copy-config": Handlers.copy_config,
    "delete-config": Handlers.delete_config,
    "lock": Handlers.lock,
    "unlock": Handlers.unlock,
    "close-session": Handlers.close_session,
    "kill-session": Handlers.kill_session,
}
MODULE_OPERATIONS: dict[str, Callable[[Handlers, etree._Element], Reply]] = {
    "clear-counters": Handlers.clear_counters,
    "get-schema": Handlers.get_schema,
    "create-subscription": Handlers.create_subscription,
    "get-data": Handlers.get_data,
    "edit-data": Handlers.edit_data,
}


ANYXML_PARAMETERS = frozenset({"config", "filter"})
"""Base-operation parameters whose contents are data of the YANG modules."""


def in_base_namespace(op: etree._Element) -> etree._Element:
    """A copy of a base operation with its unqualified parameters (and the
    operation itself, if unqualified) in the base namespace.

    RFC 6241 puts the base operations and their parameters in the base
    namespace, but ncclient's
    ``dispatch(to_ele('<lock><target><candidate/></target></lock>'))`` sends
    the whole element tree in none, and Ansible's documented
    ``<config xmlns:xc="...base:1.0">`` leaves ``<config>`` in none under a
    qualified ``<edit-config>``; other servers (yuma123 netconfd) take both.
    The leniency covers the operation's own elements only: what is inside
    ``<config>`` or ``<filter>`` is module data, whose namespaces mean what
    they say, so it is left as sent (and an unqualified data node there is
    still refused or matched by its own rules).
    """
    op = copy.deepcopy(op)
    op.tag = f"{NC}{split_tag(op.tag)[1]}"
    pending = [c for c in op if isinstance(c.tag, str)]
    while pending:
        elem = pending.pop()
        if elem.tag.startswith("{"):
            continue  # qualified: its namespace stands, and so do its children's
        name = elem.tag
        elem.tag = f"{NC}{name}"
        if name not in ANYXML_PARAMETERS:
            pending.extend(c for c in elem if isinstance(c.tag, str))
    return op


def _unqualified_parameters(op: etree._Element) -> bool:
    return any(isinstance(c.tag, str) and not c.tag.startswith("{") for c in op)


_REPLY_START = f"<?xml version='1.0' encoding='UTF-8'?>\n<rpc-reply xmlns=\"{NC_NS}\"".encode()
_ATTRIBUTE_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)
"""What lxml (libxml2) escapes in an attribute value: the three markup
characters, the quote and the whitespace that attribute normalisation
would otherwise turn into spaces."""


def _reply(rpc_attrib: dict[str, str] | None, body: list[etree._Element]) -> bytes:
    """The rpc-reply to an <rpc> of attributes ``rpc_attrib`` (echoed, RFC
    6241 §4.2) with ``body``: the bytes lxml makes of it (``_lxml_reply``).
    The common replies, with no body (its pieces are spliced in after:
    <get>, <get-config>) or an <ok/>, and attributes without a namespace,
    are written here: the lxml element and its serialisation were, with
    the caches cold as they are between two requests, a quarter of a
    get-config's own work in the control plane (20 of 80 us)."""
    attrib = rpc_attrib or {}
    if len(body) <= 1 and not any(name[0] == "{" for name in attrib):
        if not body:
            end = b"/>"
        elif _is_ok(body[0]):
            end = b"><ok/></rpc-reply>"
        else:
            return _lxml_reply(rpc_attrib, body)
        attributes = "".join(
            f' {name}="{value.translate(_ATTRIBUTE_ESCAPES)}"' for name, value in attrib.items()
        )
        return _REPLY_START + attributes.encode() + end
    return _lxml_reply(rpc_attrib, body)


def _is_ok(elem: etree._Element) -> bool:
    """Whether ``elem`` is a bare <ok/> (``ok()``)."""
    return (
        elem.tag == f"{NC}ok"
        and len(elem) == 0
        and elem.text is None
        and not elem.attrib
        and elem.nsmap.get(None) in (None, NC_NS)
    )


def _lxml_reply(rpc_attrib: dict[str, str] | None, body: list[etree._Element]) -> bytes:
    nsmap: dict[str | None, str] = {None: NC_NS}
    if any(
        (path.text or "").startswith("/nc:")
        for elem in body
        for path in elem.iter(f"{NC}error-path")
    ):
        # RFC 8341 §3.4.4: error-path "/nc:rpc/nc:commit".  The prefix is
        # declared here: lxml drops a declaration on the error-path itself
        # once it sits below an element that declares the same namespace.
        nsmap["nc"] = NC_NS
    reply = etree.Element(f"{NC}rpc-reply", nsmap=nsmap)  # type: ignore[arg-type]
    for name, value in (rpc_attrib or {}).items():
        reply.set(name, value)  # RFC 6241 §4.2: echo every attribute of <rpc>
    if body and all(_own_document(elem) for elem in body):
        # written as they are, not moved into the envelope: moving
        # reconciles namespaces, and lxml then drops a prefix a value uses
        # (an instance-identifier's "/nacm:nacm" in a <data>) where an
        # ancestor declares its namespace as the default one
        head = etree.tostring(reply, encoding="UTF-8", xml_declaration=True)
        return b"".join(splice(head, [_written(elem) for elem in body]))
    reply.extend(body)
    return etree.tostring(reply, encoding="UTF-8", xml_declaration=True)


def _own_document(elem: etree._Element) -> bool:
    """Whether ``elem`` is the root of its tree and declares its namespace
    as the default one (a rendered <data>), so that written alone it reads
    as it will in the reply."""
    return elem.getparent() is None and elem.nsmap.get(None) == split_tag(elem.tag)[0]


_NC_DEFAULT = f' xmlns="{NC_NS}"'.encode()


def _written(elem: etree._Element) -> bytes:
    """A body element of a reply as its own document, without the default
    namespace declaration the envelope makes already (<data>, <ok/>,
    <rpc-error> as clients that match text expect them)."""
    text: bytes = etree.tostring(elem, encoding="UTF-8", with_tail=False)
    end = text.find(b">")
    at = text.find(_NC_DEFAULT, 0, end)
    if at == -1:
        return text
    return text[:at] + text[at + len(_NC_DEFAULT) :]


@dataclass(frozen=True)
class Handled:
    """One processed message: the reply, whether to close, and what it was
    for the RFC 6022 counters: "ok", "error" (an rpc answered with
    rpc-error) or "bad" (not a correct <rpc> message at all)."""

    parts: Sequence[bytes]
    """The reply in pieces, joined only with its framing (a whole <get>
    is a join of cached pieces: joining it here would copy it once more)."""
    close: bool
    outcome: str
    subscription: Outbox | None = None

    @property
    def reply(self) -> bytes:
        return b"".join(self.parts)


_START_SCAN = 64 * 1024
"""Bytes read for the <rpc> start tag of a message that does not parse."""


def _rpc_attributes(message: bytes) -> dict[str, str] | None:
    """The attributes of the <rpc> start tag of a message that failed to
    parse as a whole (too deep, cut short, too big), so that the error reply
    still carries the message-id the client waits for (RFC 6241 §4.1).
    The start tag is read in small pieces, before the fault further on
    stops the parser; None when there is no <rpc> start tag to be had."""
    parser = etree.XMLPullParser(
        events=("start",), resolve_entities=False, no_network=True, load_dtd=False
    )
    data = message.lstrip(b" \t\r\n")[:_START_SCAN]
    for offset in range(0, len(data), 256):
        try:
            parser.feed(data[offset : offset + 256])
        except etree.XMLSyntaxError:
            return None
        for _event, elem in parser.read_events():
            if not isinstance(elem, etree._Element) or elem.tag != f"{NC}rpc":
                return None
            return {str(k): str(v) for k, v in elem.attrib.items()}
    return None


def handle_message(ctx: Context, session_id: int, message: bytes, user: str) -> Handled:
    """Process one framed message of ``user``'s session."""

    def bad(attrib: dict[str, str] | None, error: ConfigError) -> Handled:
        return Handled((_reply(attrib, rpc_errors([error], ctx.schema)),), False, "bad")

    try:
        root = parse_xml(message)
    except TooBig as exc:
        return bad(_rpc_attributes(message), ConfigError("too-big", str(exc), type="rpc"))
    except (etree.XMLSyntaxError, ValueError) as exc:
        return bad(
            _rpc_attributes(message),
            ConfigError("malformed-message", f"not well-formed XML: {exc}", type="rpc"),
        )
    attrib = {str(k): str(v) for k, v in root.attrib.items()}
    if root.tag != f"{NC}rpc":
        ns, name = split_tag(root.tag)
        return bad(
            None,
            ConfigError(
                "malformed-message" if name != "rpc" else "unknown-namespace",
                f"expected <rpc> in {NC_NS}, got <{name}>" + (f" in {ns}" if ns else ""),
                type="rpc",
            ),
        )
    if "message-id" not in attrib:
        return bad(
            attrib,
            ConfigError(
                "missing-attribute",
                "<rpc> has no message-id attribute",
                type="rpc",
                info=(("bad-attribute", "message-id"), ("bad-element", "rpc")),
            ),
        )
    try:
        reply = _dispatch(ctx, session_id, user, root)
    except RpcError as exc:
        return Handled((_reply(attrib, rpc_errors(exc.errors, ctx.schema)),), False, "error")
    except Exception as exc:  # a bug must cost one rpc, not the session
        log.exception("session %d: rpc failed", session_id)
        error = ConfigError("operation-failed", f"internal error: {type(exc).__name__}: {exc}")
        return Handled((_reply(attrib, rpc_errors([error], ctx.schema)),), False, "error")
    data = _reply(attrib, reply.body)
    parts = (data,) if reply.raw is None else splice(data, reply.raw)
    return Handled(parts, reply.close, "ok", reply.subscription)


def _dispatch(ctx: Context, session_id: int, user: str, rpc: etree._Element) -> Reply:
    ops = [c for c in rpc if isinstance(c.tag, str)]
    if not ops:
        raise _err("missing-element", "<rpc> contains no operation", "rpc", bad_element="rpc")
    if len(ops) > 1:
        name = split_tag(ops[1].tag)[1]
        raise _err(
            "unknown-element",
            f"<rpc> contains more than one operation: <{name}>",
            "rpc",
            bad_element=name,
        )
    op = ops[0]
    ns, name = split_tag(op.tag)
    if (ns, name) == (YANG_NS, "action"):
        return Handlers(ctx, session_id, user).action(op)
    if name in BASE_OPERATIONS and (ns == "" or (ns == NC_NS and _unqualified_parameters(op))):
        op, ns = in_base_namespace(op), NC_NS
    handlers = Handlers(ctx, session_id, user)
    if ns == NC_NS:
        base = BASE_OPERATIONS.get(name)
        if base is None:
            raise _err(
                "operation-not-supported", f"operation <{name}> is not supported", bad_element=name
            )
        handlers.authorize_rpc(NETCONF_MODULE, name, None)
        return base(handlers, op)
    module = ctx.schema.module_by_namespace(ns)
    if module is None:
        raise _err(
            "unknown-namespace",
            f'unknown namespace "{ns}" of operation <{name}>'
            if ns
            else f"operation <{name}> has no namespace and is not a base operation",
            bad_element=name,
            bad_namespace=ns,
        )
    handler = MODULE_OPERATIONS.get(name) if (ns, name) in ctx.schema.rpcs else None
    if handler is None:
        raise _err(
            "operation-not-supported", f"operation <{name}> is not supported", bad_element=name
        )
    handlers.authorize_rpc(module.name, name, ctx.schema.rpcs[(ns, name)])
    return handler(handlers, op)
