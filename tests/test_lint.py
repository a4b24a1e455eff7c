"""The module is clean for pyang --lint and yanglint, as SPEC §2 requires."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

YANG = Path(__file__).resolve().parent.parent / "yang"
MODULE = YANG / "nf-serial-over-ip.yang"


def test_pyang_lint_prints_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pyang", "--lint", "-p", str(YANG), str(MODULE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_yanglint_prints_nothing() -> None:
    yanglint = shutil.which("yanglint")
    assert yanglint, "yanglint is required: install the Debian package libyang2-tools"
    result = subprocess.run(
        [yanglint, "-p", str(YANG), str(MODULE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_example_validates_with_yanglint() -> None:
    yanglint = shutil.which("yanglint")
    assert yanglint
    example = YANG.parent / "examples" / "full.xml"
    result = subprocess.run(
        [yanglint, "-t", "config", "-p", str(YANG), str(MODULE), str(example)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
