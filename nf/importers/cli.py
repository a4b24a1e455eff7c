"""``nf import ser2net FILE``: parse, report what does not map, validate, print."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: Some of the source was skipped or approximated (each said on stderr);
#: the rest was printed.
EXIT_PARTIAL = 3


def _ser2net(args: argparse.Namespace) -> int:
    from nf.cli import document_errors
    from nf.importers.model import to_xml
    from nf.importers.ser2net import Unusable, looks_like_yaml, parse_conf, parse_yaml

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"nf import: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    yaml_format = (
        looks_like_yaml(text, path.name) if args.format == "auto" else (args.format == "yaml")
    )
    try:
        built = (parse_yaml if yaml_format else parse_conf)(text, path.name)
    except Unusable as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 1
    for note in sorted(built.notes, key=lambda n: n.line):
        print(f"{args.file}:{note.line}: {note.text}", file=sys.stderr)
    if not built.channels:
        print(f"{args.file}: no connection could be imported", file=sys.stderr)
        return 1
    xml = to_xml(built)
    errors = document_errors(xml)
    if errors:  # a mapping this importer got wrong: never print an invalid configuration
        for error in errors:
            print(f"{args.file}: imported configuration invalid: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(xml)
    return EXIT_PARTIAL if built.notes else 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``nf import`` and its source formats."""
    imp = sub.add_parser(
        "import",
        help="convert another serial server's configuration to ours",
        description="Convert another serial server's configuration to ours.",
    )
    kinds = imp.add_subparsers(dest="kind", required=True, metavar="KIND")
    ser2net = kinds.add_parser(
        "ser2net",
        help="ser2net 4.x ser2net.yaml or 3.x ser2net.conf",
        description=(
            "Read a ser2net configuration (4.x YAML, or the 3.x one-line "
            "PORT:STATE:TIMEOUT:DEVICE:OPTIONS format) and print the equivalent "
            "configuration of this daemon (serial ports and server channels), validated "
            "as nf validate does. Everything that cannot be carried over exactly is said "
            "on stderr as FILE:LINE: what and why. Exit status: 0 when everything "
            f"mapped; {EXIT_PARTIAL} when something was skipped or approximated (the rest "
            "is printed); 1 when the file cannot be used (unreadable, not YAML, nothing "
            "importable)."
        ),
    )
    ser2net.add_argument("file", help="ser2net.yaml or ser2net.conf")
    ser2net.add_argument(
        "--format",
        choices=["auto", "yaml", "conf"],
        default="auto",
        help="source format (default: from the name, else the content)",
    )
    ser2net.set_defaults(func=_ser2net)
