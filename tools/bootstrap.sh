#!/usr/bin/env bash
# Set up .venv with the project installed in editable mode.
#   tools/bootstrap.sh          runtime only
#   tools/bootstrap.sh --test   also the test tools and the Debian packages the
#                               tests drive (yanglint from libyang2-tools, socat,
#                               the yangcli NETCONF client,
#                               ssh from openssh-client, sshd from
#                               openssh-server, ip from iproute2,
#                               docker-compose, systemd, podman, runc, debootstrap,
#                               a C compiler for nf/protocol/_iac.c)
# Idempotent: a second run only checks.  Needs Python >= 3.11.
set -euo pipefail
cd "$(dirname "$0")/.."

with_test=0
[ "${1:-}" = "--test" ] && with_test=1
PY=${PYTHON:-python3}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    echo "bootstrap: installing Debian packages: $*" >&2
    as_root apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "bootstrap: $PY is $("$PY" --version 2>&1); Python >= 3.11 is required" >&2
    exit 1
fi

if [ "$with_test" = 1 ]; then
    need=()
    command -v yanglint >/dev/null || need+=(libyang2-tools)
    command -v socat >/dev/null || need+=(socat)
    command -v yangcli >/dev/null || need+=(yangcli)
    # ssh -s netconf, and scrapli-netconf's system transport, in the client tests
    command -v ssh >/dev/null || need+=(openssh-client)
    # a private sshd whose netconf subsystem is nf-subsystem (test_subsystem)
    [ -x /usr/sbin/sshd ] || need+=(openssh-server)
    # ip netns, veth and bridge links: compose/lab and its tests
    command -v ip >/dev/null || need+=(iproute2)
    # compose/: `docker-compose config` reads the compose file (no engine);
    # systemd-analyze verify/security and systemd-sysusers check the unit
    command -v docker-compose >/dev/null || need+=(docker-compose)
    command -v systemd-analyze >/dev/null || need+=(systemd)
    # the slow container test: podman on runc (crun refuses this kind of
    # machine's hybrid cgroups) with netavark and iptables for published
    # ports (recommended, not required, by podman), its base image made
    # with debootstrap
    command -v podman >/dev/null || need+=(podman netavark iptables)
    command -v runc >/dev/null || need+=(runc)
    command -v debootstrap >/dev/null || need+=(debootstrap)
    # the Telnet parser's C hot path (nf/protocol/_iac.c): the suite checks
    # that it is built, so that tests and benchmarks run what users get
    command -v cc >/dev/null || need+=(gcc libc6-dev)
    "$PY" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        || need+=(python3-dev)
    if [ "${#need[@]}" -gt 0 ]; then apt_install "${need[@]}"; fi
fi

if [ ! -x .venv/bin/python ]; then
    # Debian's python3 has no ensurepip unless python3-venv is installed
    if ! "$PY" -c 'import ensurepip' 2>/dev/null; then
        apt_install "python3-venv"
    fi
    "$PY" -m venv .venv
fi

extras=""
[ "$with_test" = 1 ] && extras="[test]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}" 2>&1 \
    | grep -v "^WARNING: Location" || true
.venv/bin/python -c 'import nf.cli' # fails loudly if the install did not work
# optional, so the install above succeeds without a C compiler; say so
.venv/bin/python -c 'import nf.protocol.telnet as t; t.ACCELERATED or print(
    "bootstrap: no C compiler: RFC 2217 channels run their pure-Python parser (slower)")' >&2
