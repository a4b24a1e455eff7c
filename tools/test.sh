#!/usr/bin/env bash
# Install everything the tests need and run all checks: ruff, mypy, pytest.
# This is the README's test command; .ci/run calls it as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh --test
echo "== ruff"
.venv/bin/ruff check nf tests tools
.venv/bin/ruff format --check nf tests tools
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
