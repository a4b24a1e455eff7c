"""What an orchestrator learns of a NETCONF server with NETCONF alone.

    tools/discover HOST[:PORT] -u USER -p PASSWORD [--out DIR]

1. reads the YANG library: ``/yang-library`` (RFC 8525) with <get>, and if
   the server has none (or does not let this user read it), the older
   ``/modules-state`` (RFC 7895);
2. fetches every module and submodule it lists with <get-schema> (RFC 6022),
   into DIR as ``NAME@REVISION.yang`` (RFC 7950 §5.2);
3. compiles the implemented modules with pyang, the fetched directory as
   its only search path, so the set must be complete and consistent;
4. prints a summary.  Any failure ends with one message saying which step
   failed and why, and exit status 1.

No file of this repository is read: the point is to see what a client that
knows nothing but the address gets.  PORT defaults to 830; DIR to
``discovered/HOST-PORT``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree
from ncclient import manager  # type: ignore[import-untyped]
from ncclient.operations import RPCError  # type: ignore[import-untyped]
from pyang import context, error, repository

YANGLIB = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
MONITORING = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
NS = {"yl": YANGLIB}


class DiscoverError(Exception):
    """One step failed; the message says which and why."""


@dataclass(frozen=True)
class Schema:
    """A module or submodule the server lists."""

    name: str
    revision: str | None
    kind: str  # "implement", "import" or "submodule"
    features: tuple[str, ...] = ()
    submodules: tuple[Schema, ...] = field(default=())

    @property
    def filename(self) -> str:
        return f"{self.name}@{self.revision}.yang" if self.revision else f"{self.name}.yang"


@dataclass(frozen=True)
class Library:
    source: str  # which YANG library answered
    content_id: str | None
    modules: tuple[Schema, ...]

    def schemas(self) -> list[Schema]:
        """Every module and submodule, each once."""
        seen: dict[tuple[str, str | None], Schema] = {}
        for module in self.modules:
            for schema in (module, *module.submodules):
                seen.setdefault((schema.name, schema.revision), schema)
        return list(seen.values())


def parse_endpoint(text: str) -> tuple[str, int]:
    """HOST, HOST:PORT, [V6] or [V6]:PORT."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host or (port and not port.isdigit()):
        raise DiscoverError(f"not HOST[:PORT]: {text}")
    return host, int(port or 830)


def _text(node: etree._Element, path: str) -> str | None:
    found = node.find(path, NS)
    return None if found is None or found.text is None else found.text.strip()


def _submodules(entry: etree._Element) -> tuple[Schema, ...]:
    return tuple(
        Schema(_text(sub, "yl:name") or "", _text(sub, "yl:revision") or None, "submodule")
        for sub in entry.findall("yl:submodule", NS)
    )


def parse_yang_library(data: etree._Element) -> Library | None:
    """RFC 8525 /yang-library: the modules of every module-set, implemented
    and import-only."""
    library = data.find("yl:yang-library", NS)
    if library is None:
        return None
    modules: dict[tuple[str, str | None], Schema] = {}
    for entry in library.iterfind("yl:module-set/*", NS):
        tag = etree.QName(entry).localname
        if tag not in ("module", "import-only-module"):
            continue
        schema = Schema(
            _text(entry, "yl:name") or "",
            _text(entry, "yl:revision") or None,
            "implement" if tag == "module" else "import",
            tuple(f.text or "" for f in entry.findall("yl:feature", NS)),
            _submodules(entry),
        )
        modules.setdefault((schema.name, schema.revision), schema)
    if not modules:
        return None
    return Library(
        "/yang-library (RFC 8525)", _text(library, "yl:content-id"), tuple(modules.values())
    )


def parse_modules_state(data: etree._Element) -> Library | None:
    """RFC 7895 /modules-state."""
    state = data.find("yl:modules-state", NS)
    if state is None:
        return None
    modules = tuple(
        Schema(
            _text(entry, "yl:name") or "",
            _text(entry, "yl:revision") or None,
            _text(entry, "yl:conformance-type") or "implement",
            tuple(f.text or "" for f in entry.findall("yl:feature", NS)),
            _submodules(entry),
        )
        for entry in state.findall("yl:module", NS)
    )
    if not modules:
        return None
    return Library("/modules-state (RFC 7895)", _text(state, "yl:module-set-id"), modules)


def read_library(m: Any) -> Library:
    """The YANG library, RFC 8525's if the server gives it, else RFC 7895's."""
    problems = []
    for element, parse in (
        ("yang-library", parse_yang_library),
        ("modules-state", parse_modules_state),
    ):
        try:
            data = m.get(filter=("subtree", f'<{element} xmlns="{YANGLIB}"/>')).data_ele
        except RPCError as exc:
            problems.append(f"<get> of /{element}: {exc.tag}: {exc.message or exc}")
            continue
        library = parse(data)
        if library is not None:
            return library
        problems.append(f"<get> of /{element}: empty")
    raise DiscoverError(
        "the server offers no YANG library (RFC 8525 /yang-library nor RFC 7895 "
        "/modules-state): " + "; ".join(problems)
    )


def fetch(m: Any, schemas: list[Schema], out: Path) -> dict[Schema, Path]:
    """<get-schema> of each schema into ``out``."""
    if not any(c.startswith(MONITORING) for c in m.server_capabilities):
        raise DiscoverError("the server does not offer ietf-netconf-monitoring (no <get-schema>)")
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for schema in schemas:
        label = schema.filename.removesuffix(".yang")
        try:
            reply = m.get_schema(schema.name, version=schema.revision, format="yang")
        except RPCError as exc:
            raise DiscoverError(
                f"<get-schema> of {label}: {exc.tag}: {exc.message or exc}"
            ) from None
        text = reply.data
        if not text or not text.strip():
            raise DiscoverError(f"<get-schema> of {label}: an empty schema")
        path = out / schema.filename
        path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        files[schema] = path
    return files


def compile_modules(library: Library, files: dict[Schema, Path], out: Path) -> int:
    """pyang on the implemented modules with ``out`` as its only search path
    (not pyang's own bundled modules, nor $YANG_MODPATH: a module the server
    did not give must be missed); the number of warnings."""
    repo = repository.FileRepository(str(out), use_env=False, no_path_recurse=True)
    ctx = context.Context(repo)
    for schema in library.modules:
        if schema.kind == "implement":
            path = files[schema]
            ctx.add_module(str(path), path.read_text(encoding="utf-8"))
    ctx.validate()
    errors, warnings = [], 0
    for pos, tag, args in ctx.errors:
        if error.is_error(error.err_level(tag)):
            errors.append(f"{pos}: error: {error.err_to_str(tag, args)}")
        else:
            warnings += 1
    if errors:
        raise DiscoverError("pyang does not compile the fetched modules:\n" + "\n".join(errors))
    return warnings


def summary(endpoint: str, library: Library, files: dict[Schema, Path], warnings: int) -> str:
    counts = {kind: sum(s.kind == kind for s in library.schemas()) for kind in
              ("implement", "import", "submodule")}  # fmt: skip
    lines = [
        f"{endpoint}: {len(files)} schemas from {library.source}"
        + (f", content-id {library.content_id}" if library.content_id else ""),
        f"  {counts['implement']} implemented, {counts['import']} import-only,"
        f" {counts['submodule']} submodules",
    ]
    rows = [("module", "revision", "conformance", "features", "file", "bytes")]
    for schema, path in files.items():
        rows.append(
            (
                schema.name,
                schema.revision or "-",
                schema.kind,
                ",".join(schema.features) or "-",
                str(path),
                str(path.stat().st_size),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]  # fmt: skip
    lines.append(f"pyang: {counts['implement']} implemented modules compile"
                 f" ({warnings} warnings)")  # fmt: skip
    return "\n".join(lines)


def discover(host: str, port: int, user: str, password: str, out: Path, timeout: float) -> str:
    try:
        m = manager.connect(
            host=host,
            port=port,
            username=user,
            password=password,
            hostkey_verify=False,
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
        )
    except Exception as exc:  # every way of not getting a session is the answer
        reason = str(exc) or type(exc).__name__
        raise DiscoverError(f"no NETCONF session with {host}:{port} as {user}: {reason}") from None
    with m:
        m.timeout = timeout
        library = read_library(m)
        files = fetch(m, library.schemas(), out)
    warnings = compile_modules(library, files, out)
    return summary(f"{host}:{port}", library, files, warnings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/discover", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("endpoint", metavar="HOST[:PORT]")
    parser.add_argument("-u", "--user", required=True)
    parser.add_argument("-p", "--password", required=True)
    parser.add_argument("--out", type=Path, help="where the modules go")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    args = parser.parse_args(argv)
    try:
        host, port = parse_endpoint(args.endpoint)
        out = args.out or Path("discovered") / f"{host}-{port}"
        print(discover(host, port, args.user, args.password, out, args.timeout))
    except DiscoverError as exc:
        print(f"discover: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
