"""Parity of our validator with yanglint over a hand-made configuration corpus.

tests/corpus/valid/*.xml must be accepted and tests/corpus/invalid/*.xml
rejected, both by yanglint (libyang) and by ``nf validate``.  Each file
starts with an XML comment saying what it tests and, for invalid files,
which YANG rule it breaks.  The yanglint check guards the corpus itself:
if the module changes so that a file no longer means what its directory
says, that test fails before the validator is blamed.

Note on invalid/channel-missing-mode.xml: a channel without 'mode' always
breaks a must or when as well (XPath comparisons with the absent mode are
false), and libyang reports that must before the mandatory check; the
file is still invalid for the intended reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
YANG_DIR = ROOT / "yang"
MODULE = YANG_DIR / "nf-serial-over-ip.yang"
CORPUS = Path(__file__).resolve().parent / "corpus"
NS = "urn:nf:params:xml:ns:yang:nf-serial-over-ip"

MIN_VALID = 15
MIN_INVALID = 25

# An error path into the data tree: "/serial-over-ip/...", optionally with a
# module or prefix qualifier ("/nf-serial-over-ip:serial-over-ip/...").
ERROR_PATH = re.compile(r"(?<![\w.-])/(?:[A-Za-z][\w.-]*:)?serial-over-ip\b")


def _corpus(kind: str) -> list[Path]:
    return sorted((CORPUS / kind).glob("*.xml"))


CASES: list[tuple[str, Path]] = [
    (kind, path) for kind in ("valid", "invalid") for path in _corpus(kind)
]
IDS: list[str] = [f"{kind}/{path.name}" for kind, path in CASES]


@pytest.fixture(scope="session")
def yanglint() -> str:
    exe = shutil.which("yanglint")
    if exe is None:
        pytest.fail(
            "yanglint is required for the YANG parity tests "
            "(install the Debian package libyang2-tools)",
            pytrace=False,
        )
    return exe


def test_corpus_size() -> None:
    valid = _corpus("valid")
    invalid = _corpus("invalid")
    assert len(valid) >= MIN_VALID, f"only {len(valid)} valid corpus files"
    assert len(invalid) >= MIN_INVALID, f"only {len(invalid)} invalid corpus files"


@pytest.mark.parametrize(("kind", "path"), CASES, ids=IDS)
def test_corpus_file_is_well_formed(kind: str, path: Path) -> None:
    """Every file is well-formed XML with the module's root element and a
    leading comment, so invalid files fail for a YANG reason, not for XML
    syntax."""
    text = path.read_text(encoding="utf-8")
    assert text.lstrip().startswith("<!--"), f"{path.name}: no leading comment"
    root = ET.fromstring(text)
    assert root.tag == f"{{{NS}}}serial-over-ip", f"{path.name}: root is {root.tag}"


@pytest.mark.parametrize(("kind", "path"), CASES, ids=IDS)
def test_yanglint_verdict(yanglint: str, kind: str, path: Path) -> None:
    proc = subprocess.run(
        [yanglint, "-t", "config", "-p", str(YANG_DIR), str(MODULE), str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    output = (proc.stdout + proc.stderr).strip()
    assert "Cannot apply XPath operation" not in output, output
    if kind == "valid":
        assert proc.returncode == 0, f"yanglint rejects a valid file:\n{output}"
    else:
        assert proc.returncode != 0, "yanglint accepts an invalid file"
        # A data-validation error (with its location), not a usage error.
        assert "location" in output, f"unexpected yanglint failure:\n{output}"


@pytest.mark.parametrize(("kind", "path"), CASES, ids=IDS)
def test_validator_agrees(kind: str, path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nf.cli import main

    try:
        rc = main(["validate", str(path)])
    except SystemExit as exc:  # an argparse-style main may exit instead
        rc = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    output = captured.out + captured.err
    if kind == "valid":
        assert rc == 0, f"validator rejects a valid file:\n{output}"
    else:
        assert rc == 1, f"validator returned {rc} for an invalid file:\n{output}"
        assert output.strip(), "validator printed nothing for an invalid file"
        assert ERROR_PATH.search(output), (
            f"validator output names no error path starting with '/':\n{output}"
        )
