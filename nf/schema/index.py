"""The schema index: pyang's compiled module turned into a frozen lookup tree.

The YANG module is the only place where node names, types, ranges, defaults
and constraints are written.  At start-up pyang compiles it (with the same
errors ``pyang --lint`` would print) and this module walks the expanded
statement tree (uses and augments already applied) into ``SchemaNode``
objects that the config core consults.  Nothing here knows the
serial-over-IP module in particular: tests load other modules through the
same path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyang import context as pyang_context
from pyang import error as pyang_error
from pyang import repository as pyang_repository

from nf.schema.types import LeafType
from nf.schema.xpath import XPathExpr, XPathSyntaxError

QName = tuple[str, str]
"""(namespace, local name) of a data node."""

DATA_KEYWORDS = frozenset({"container", "list", "leaf", "leaf-list", "anydata", "anyxml"})
YANG_DIR = Path(__file__).resolve().parent.parent / "yang"
MAIN_MODULE = "nf-serial-over-ip"
DEFAULT_MODULES = (
    MAIN_MODULE,
    "ietf-netconf-acm",
    "ietf-netconf-monitoring",
    "ietf-yang-library",
    "ietf-netconf-nmda",
    "ietf-origin",
    "ietf-datastores",
    "notifications",
    "nc-notifications",
    "ietf-netconf-notifications",
    "ietf-netconf",
)
"""Modules the daemon implements (imports such as ietf-inet-types come
along).  ietf-netconf is implemented because ietf-netconf-nmda augments its
operations and makes get-data's xpath-filter depend on its ``xpath``
feature: a client reading the YANG library learns from it what the hello's
capabilities say.  Its operations are still served by the RPC layer."""
DEFAULT_FEATURES: dict[str, tuple[str, ...]] = {
    "ietf-netconf": (
        "writable-running",
        "candidate",
        "confirmed-commit",
        "rollback-on-error",
        "validate",
        "startup",
        "xpath",
    ),
}
"""The features of implemented modules that are supported where a module
declares more (ietf-netconf's ``url`` is not); every other module's
features are all supported."""


class SchemaError(Exception):
    """The YANG modules do not compile."""


@dataclass(frozen=True)
class Must:
    """A must statement with its RFC 7950 error-message and error-app-tag."""

    expr: XPathExpr
    error_message: str | None
    error_app_tag: str | None


@dataclass(frozen=True)
class Choice:
    """A choice under a data node: which data children belong to which case."""

    name: str
    mandatory: bool
    default_case: str | None
    cases: dict[str, frozenset[QName]]
    depth: int
    """How many choices enclose this one below the data parent (0 = direct)."""


@dataclass(eq=False)
class SchemaNode:
    """One data node (or rpc/notification/input/output) of the schema."""

    keyword: str
    name: str
    namespace: str
    module: str
    prefix: str
    config: bool
    parent: SchemaNode | None = field(repr=False)
    description: str = ""
    units: str | None = None
    children: dict[QName, SchemaNode] = field(default_factory=dict, repr=False)
    keys: tuple[QName, ...] = ()
    presence: bool = False
    mandatory: bool = False
    defaults: tuple[str, ...] = ()
    type: LeafType | None = None
    musts: tuple[Must, ...] = ()
    when: XPathExpr | None = None
    uniques: tuple[tuple[tuple[QName, ...], ...], ...] = ()
    min_elements: int = 0
    max_elements: int | None = None
    user_ordered: bool = False
    case_path: tuple[tuple[str, str], ...] = ()
    """(choice, case) pairs between the data parent and this node, outermost first."""
    choices: tuple[Choice, ...] = ()
    leafref: XPathExpr | None = None
    extensions: frozenset[tuple[str, str]] = frozenset()
    """(module, name) of the extension statements on this node, such as
    ("ietf-netconf-acm", "default-deny-all"): consumers such as NACM read
    them here instead of keeping lists of node names."""

    @property
    def qname(self) -> QName:
        return (self.namespace, self.name)

    @property
    def is_leaf(self) -> bool:
        return self.keyword == "leaf"

    def child(self, namespace: str, name: str) -> SchemaNode | None:
        return self.children.get((namespace, name))

    def child_by_name(self, name: str) -> SchemaNode | None:
        """The child with this local name, preferring this node's namespace."""
        found = self.children.get((self.namespace, name))
        if found is not None:
            return found
        for (_ns, local), node in self.children.items():
            if local == name:
                return node
        return None

    def ancestors(self) -> Iterator[SchemaNode]:
        node = self.parent
        while node is not None and node.keyword != "root":
            yield node
            node = node.parent

    def schema_path(self) -> str:
        """/prefix:a/prefix:b, for messages and the tree printer."""
        parts = [self, *self.ancestors()]
        return "".join(f"/{n.prefix}:{n.name}" for n in reversed(parts))

    def __repr__(self) -> str:
        return f"<SchemaNode {self.keyword} {self.schema_path()}>"


@dataclass(frozen=True)
class ModuleInfo:
    """What the server advertises about a loaded module."""

    name: str
    revision: str | None
    namespace: str
    prefix: str
    path: Path
    features: tuple[str, ...]
    implemented: bool


@dataclass(eq=False)
class SchemaIndex:
    """Every module's top-level data nodes, rpcs and notifications."""

    root: SchemaNode
    rpcs: dict[QName, SchemaNode]
    notifications: dict[QName, SchemaNode]
    modules: dict[str, ModuleInfo]
    prefixes: dict[str, str]
    """namespace -> module prefix, for error paths."""
    context: Any = field(repr=False)

    def module_by_namespace(self, namespace: str) -> ModuleInfo | None:
        for info in self.modules.values():
            if info.namespace == namespace:
                return info
        return None

    def walk(self) -> Iterator[SchemaNode]:
        """Every data node, depth first in schema order."""
        stack = list(reversed(self.root.children.values()))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children.values()))


def _module_of(stmt: Any) -> Any:
    mod = stmt.i_module
    if mod.keyword == "submodule":
        mod = mod.i_ctx.get_module(mod.i_including_modulename)
    return mod


def _arg(stmt: Any, keyword: str) -> str | None:
    sub = stmt.search_one(keyword)
    return None if sub is None else str(sub.arg)


def _namespaces(module: Any) -> dict[str, str]:
    """prefix -> namespace as seen from inside ``module``."""
    ctx = module.i_ctx
    result = {str(module.i_prefix): str(module.search_one("namespace").arg)}
    for imp in module.search("import"):
        prefix = imp.search_one("prefix").arg
        rev = imp.search_one("revision-date")
        imported = ctx.get_module(imp.arg, None if rev is None else rev.arg)
        if imported is not None:
            result[str(prefix)] = str(imported.search_one("namespace").arg)
    return result


class _Builder:
    def __init__(self) -> None:
        self.ns_cache: dict[int, dict[str, str]] = {}

    def xpath(self, source: str, stmt: Any) -> XPathExpr:
        module = _module_of(stmt)
        namespaces = self.ns_cache.get(id(module))
        if namespaces is None:
            namespaces = _namespaces(module)
            self.ns_cache[id(module)] = namespaces
        # a name without prefix means the module where the expression is written
        own = stmt.i_orig_module if hasattr(stmt, "i_orig_module") else stmt.i_module
        prefix = str(own.i_prefix)
        try:
            return XPathExpr(source, prefix, namespaces)
        except XPathSyntaxError as exc:
            raise SchemaError(f"{stmt.pos}: {exc}") from exc

    def node(
        self, stmt: Any, parent: SchemaNode, case_path: tuple[tuple[str, str], ...]
    ) -> SchemaNode:
        module = _module_of(stmt)
        keyword = str(stmt.keyword)
        config = getattr(stmt, "i_config", None)
        node = SchemaNode(
            keyword=keyword,
            name=str(stmt.arg) if stmt.arg is not None else keyword,
            namespace=str(module.search_one("namespace").arg),
            module=str(module.arg),
            prefix=str(module.i_prefix),
            config=parent.config if config is None else bool(config),
            parent=parent,
            description=_arg(stmt, "description") or "",
            units=_arg(stmt, "units"),
            case_path=case_path,
        )
        if keyword in ("input", "output"):
            node.namespace = parent.namespace
            node.prefix = parent.prefix
            node.module = parent.module
        node.extensions = frozenset(
            (str(sub.keyword[0]), str(sub.keyword[1]))
            for sub in stmt.substmts
            if isinstance(sub.keyword, tuple)
        )
        node.presence = stmt.search_one("presence") is not None
        node.mandatory = _arg(stmt, "mandatory") == "true"
        node.user_ordered = _arg(stmt, "ordered-by") == "user"
        min_el = _arg(stmt, "min-elements")
        max_el = _arg(stmt, "max-elements")
        node.min_elements = int(min_el) if min_el else 0
        node.max_elements = int(max_el) if max_el and max_el != "unbounded" else None
        when = stmt.search_one("when")
        if when is not None and not _in_input(parent):
            # an rpc's input is read by its handler, never validated as data:
            # its conditions (ietf-netconf-nmda's derived-from-or-self() on
            # the datastore) are the handler's rules, not compiled here
            node.when = self.xpath(str(when.arg), when)
        node.musts = tuple(
            Must(
                self.xpath(str(m.arg), m),
                _arg(m, "error-message"),
                _arg(m, "error-app-tag"),
            )
            for m in stmt.search("must")
        )
        if keyword in ("leaf", "leaf-list"):
            type_stmt = stmt.search_one("type")
            node.type = LeafType(type_stmt, module)
            if node.type.leafref_path is not None:
                path_stmt = type_stmt.i_type_spec.path_
                node.leafref = self.xpath(node.type.leafref_path, path_stmt)
            if keyword == "leaf":
                default = getattr(stmt, "i_default_str", "") or _arg(stmt, "default")
                if default:
                    node.defaults = (str(default),)
            else:
                node.defaults = tuple(str(d.arg) for d in stmt.search("default"))
        self.children(stmt, node, ())
        if keyword == "list":
            node.keys = tuple((node.namespace, str(k.arg)) for k in stmt.i_key)
            node.uniques = tuple(
                tuple(self._unique_path(leaf, stmt) for leaf in leaves)
                for _u, leaves in getattr(stmt, "i_unique", [])
            )
        return node

    @staticmethod
    def _unique_path(leaf: Any, list_stmt: Any) -> tuple[QName, ...]:
        """Descendant path of a unique leaf below its list, skipping choice/case."""
        path: list[QName] = []
        ptr = leaf
        while ptr is not None and ptr is not list_stmt:
            if ptr.keyword in DATA_KEYWORDS:
                path.append((str(_module_of(ptr).search_one("namespace").arg), str(ptr.arg)))
            ptr = ptr.parent
        return tuple(reversed(path))

    def children(
        self, stmt: Any, parent: SchemaNode, case_path: tuple[tuple[str, str], ...]
    ) -> None:
        """Add the data children of ``stmt`` (choices flattened) to ``parent``."""
        for child in getattr(stmt, "i_children", []):
            if child.keyword in DATA_KEYWORDS or child.keyword in ("input", "output", "action"):
                node = self.node(child, parent, case_path)
                parent.children[node.qname] = node
            elif child.keyword == "choice":
                self.choice(child, parent, case_path)

    def choice(self, stmt: Any, parent: SchemaNode, case_path: tuple[tuple[str, str], ...]) -> None:
        name = str(stmt.arg)
        cases: dict[str, frozenset[QName]] = {}
        for case in getattr(stmt, "i_children", []):
            case_name = str(case.arg)
            path = (*case_path, (name, case_name))
            before = set(parent.children)
            if case.keyword == "case":
                self.children(case, parent, path)
            else:  # shorthand: the data node is its own case
                node = self.node(case, parent, path)
                parent.children[node.qname] = node
            cases[case_name] = frozenset(set(parent.children) - before)
        parent.choices = (
            *parent.choices,
            Choice(
                name=name,
                mandatory=_arg(stmt, "mandatory") == "true",
                default_case=_arg(stmt, "default"),
                cases=cases,
                depth=len(case_path),
            ),
        )


def _in_input(node: SchemaNode) -> bool:
    """Whether ``node`` is an rpc's or action's input or lies below one."""
    return node.keyword == "input" or any(a.keyword == "input" for a in node.ancestors())


def _load_context(
    paths: Sequence[Path], search: Sequence[Path], features: dict[str, tuple[str, ...]]
) -> tuple[Any, list[Any]]:
    repo = pyang_repository.FileRepository(
        ":".join(str(p) for p in search), use_env=False, no_path_recurse=True
    )
    ctx = pyang_context.Context(repo)
    ctx.features = {name: list(enabled) for name, enabled in features.items()}
    modules = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        module = ctx.add_module(str(path), text)
        if module is None:
            break
        modules.append(module)
    ctx.validate()
    errors = [
        f"{pos}: {pyang_error.err_to_str(tag, args)}"
        for pos, tag, args in ctx.errors
        if pyang_error.is_error(pyang_error.err_level(tag))
    ]
    if errors or len(modules) != len(paths):
        raise SchemaError("YANG modules do not compile:\n" + "\n".join(errors))
    return ctx, modules


def load(
    paths: Iterable[Path | str] | None = None, search: Iterable[Path | str] | None = None
) -> SchemaIndex:
    """Compile YANG modules with pyang and index them.

    With no arguments, loads the modules the daemon implements from ``nf/yang``.
    """
    module_paths = [Path(p) for p in (paths or [YANG_DIR / f"{m}.yang" for m in DEFAULT_MODULES])]
    search_dirs = [Path(p) for p in (search or [])] + sorted(
        {p.parent for p in module_paths} | {YANG_DIR}
    )
    ctx, modules = _load_context(module_paths, search_dirs, DEFAULT_FEATURES)
    builder = _Builder()
    root = SchemaNode(
        keyword="root", name="", namespace="", module="", prefix="", config=True, parent=None
    )
    rpcs: dict[QName, SchemaNode] = {}
    notifications: dict[QName, SchemaNode] = {}
    infos: dict[str, ModuleInfo] = {}
    prefixes: dict[str, str] = {}
    for module in ctx.modules.values():
        if module.keyword != "module":
            continue
        ns = str(module.search_one("namespace").arg)
        rev = module.search_one("revision")
        prefixes[ns] = str(module.i_prefix)
        infos[str(module.arg)] = ModuleInfo(
            name=str(module.arg),
            revision=None if rev is None else str(rev.arg),
            namespace=ns,
            prefix=str(module.i_prefix),
            path=Path(module.pos.ref),
            # an import-only module's features are not offered (RFC 8525 §3)
            features=tuple(
                str(f.arg)
                for f in module.search("feature")
                if str(f.arg) in DEFAULT_FEATURES.get(str(module.arg), (str(f.arg),))
            )
            if module in modules
            else (),
            implemented=module in modules,
        )
    for module in modules:
        for stmt in getattr(module, "i_children", []):
            if stmt.keyword in ("rpc", "notification"):
                holder = SchemaNode(
                    keyword="root",
                    name="",
                    namespace="",
                    module="",
                    prefix="",
                    config=stmt.keyword == "rpc",
                    parent=None,
                )
                node = builder.node(stmt, holder, ())
                node.config = False
                (rpcs if stmt.keyword == "rpc" else notifications)[node.qname] = node
        builder.children(_TopLevel(module), root, ())
    return SchemaIndex(
        root=root,
        rpcs=rpcs,
        notifications=notifications,
        modules=infos,
        prefixes=prefixes,
        context=ctx,
    )


class _TopLevel:
    """A module seen as a parent of its top-level data nodes only."""

    def __init__(self, module: Any) -> None:
        self.i_children = [
            c for c in getattr(module, "i_children", []) if c.keyword not in ("rpc", "notification")
        ]


_DEFAULT: SchemaIndex | None = None


def default_schema() -> SchemaIndex:
    """The product schema, compiled once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load()
    return _DEFAULT
