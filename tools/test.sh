#!/usr/bin/env bash
# Install everything the tests need and run all checks: ruff, mypy, pytest.
# This is the README's test command; .ci/run calls it as it is.
#   tools/test.sh            the whole suite (below)
#   tools/test.sh ARGS...    pytest ARGS, in one process (a file, -k, -m ...)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh --test
echo "== ruff"
.venv/bin/ruff check nf tests tools
.venv/bin/ruff format --check nf tests tools
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
# Bytecode caches (git ignores them): without them every process of the run
# (two workers, the timing run, each `nf run` a test starts) compiled nf and
# pytest re-rewrote every test module, seconds of CPU each.
unset PYTHONDONTWRITEBYTECODE
pytest=(.venv/bin/python -m pytest -q -p no:cacheprovider)
if [ "$#" -gt 0 ]; then
    exec "${pytest[@]}" "$@"
fi
# Four workers (pytest-xdist) for all but the tests marked "timing", which
# bound how long the daemon takes to answer or to fail: those run after
# the rest, apart, so that the four workers' load does not count in their
# times.  Four on two cores: most tests wait (for a daemon, a subprocess,
# a timer) more than they compute.  The timing tests run two at a time
# (mostly they wait: a boot that must fail, a timer, a restart), but the
# group "busy" (the fuzzer, the isolation bench: each keeps CPUs busy) on
# one worker, one after the other.  Both runs always happen; the status is
# the first failure's.
status=0
"${pytest[@]}" -n 4 --dist loadgroup -m "not timing" || status=$?
echo "== pytest, the timing tests apart"
"${pytest[@]}" -n 2 --dist loadgroup -m timing || status=$((status ? status : $?))
exit "$status"
