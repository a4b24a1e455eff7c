"""The ``nf`` command line: run the daemon, validate a config offline, print the tree."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from lxml import etree

from nf import __version__

DEMO_CONFIG = Path(__file__).resolve().parent / "data" / "demo.xml"


def _validate(args: argparse.Namespace) -> int:
    from nf.config import load_document, validate
    from nf.schema import default_schema

    schema = default_schema()
    path = Path(args.file)
    try:
        tree, errors = load_document(path, schema)
    except OSError as exc:
        print(f"nf validate: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except (etree.XMLSyntaxError, ValueError) as exc:
        print(f"{path}: not well-formed XML: {exc}", file=sys.stderr)
        return 1
    errors += validate(tree, schema)
    for error in errors:
        print(f"{path}: {error}")
        for name, text in error.info:
            if name != "bad-element":
                print(f"    {name}: {text}")
    if errors:
        print(f"{path}: {len(errors)} error{'s' if len(errors) != 1 else ''}")
        return 1
    if not args.quiet:
        print(f"{path}: valid")
    return 0


def _tree(args: argparse.Namespace) -> int:
    """Print the module's tree exactly as ``pyang -f tree`` does."""
    from nf.schema import MAIN_MODULE, YANG_DIR

    cmd = [sys.executable, "-m", "pyang", "-f", "tree", "-p", str(YANG_DIR)]
    if args.depth is not None:
        cmd += ["--tree-depth", str(args.depth)]
    cmd.append(str(YANG_DIR / f"{MAIN_MODULE}.yang"))
    return subprocess.run(cmd, check=False).returncode


def _run(args: argparse.Namespace) -> int:
    from nf.config import load_document, validate
    from nf.schema import default_schema

    schema = default_schema()
    tree, errors = load_document(DEMO_CONFIG, schema)
    errors += validate(tree, schema)
    if errors:
        for error in errors:
            print(f"{DEMO_CONFIG}: {error}", file=sys.stderr)
        return 1
    print(f"nf {__version__}: embedded default configuration {DEMO_CONFIG.name} is valid.")
    print("The NETCONF server and the relay runtime are not implemented yet;")
    print("nothing is listening.  Try: nf validate examples/full.xml, nf tree")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nf",
        description="Serial-over-IP network function managed over NETCONF/YANG.",
    )
    parser.add_argument("--version", action="version", version=f"nf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the daemon (with no configuration: the embedded loop:// demo)",
        description="Run the daemon on its embedded default configuration.",
    )
    run.set_defaults(func=_run)

    val = sub.add_parser(
        "validate",
        help="validate an XML configuration file against the YANG module",
        description=(
            "Validate a configuration file offline with the validator the server uses. "
            "The file's root is the serial-over-ip element (instance data, as yanglint "
            "takes it) or a NETCONF <config>/<data> wrapper around it. Prints each "
            "error with its instance path; exit status 1 when there are errors."
        ),
    )
    val.add_argument("file", help="XML configuration file")
    val.add_argument("-q", "--quiet", action="store_true", help="print nothing when valid")
    val.set_defaults(func=_validate)

    tree = sub.add_parser("tree", help="print the YANG tree of the module")
    tree.add_argument("--depth", type=int, default=None, help="limit the depth printed")
    tree.set_defaults(func=_tree)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
