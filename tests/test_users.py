"""Users: scrypt hashes, `nf user`, and a running daemon picking up changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest
from conftest import Running

from nf.northbound.auth import (
    _DUMMY_HASH,
    Users,
    ensure_admin,
    hash_password,
    verify_password,
)

NF = str(Path(sys.executable).parent / "nf")


def test_password_hash_round_trip_and_no_plaintext(tmp_path: Path) -> None:
    stored = hash_password("s3cret")
    assert stored.startswith("scrypt$") and "s3cret" not in stored
    assert verify_password("s3cret", stored)
    assert not verify_password("S3cret", stored)
    assert not verify_password("s3cret", "garbage")
    users = Users(tmp_path / "users.json")
    assert ensure_admin(users, {"NF_ADMIN_PASSWORD": "chosen"}).source == "environment"
    assert not (tmp_path / "users.json").exists()  # saved by the caller, once the daemon is up
    users.save()
    assert Users(tmp_path / "users.json").check_password("admin", "chosen")
    assert (tmp_path / "users.json").stat().st_mode & 0o077 == 0


def test_the_unknown_user_hash_costs_what_a_real_check_costs() -> None:
    """The written-out hash a login of an unknown user is checked against
    is a real one, with today's scrypt parameters (the same work)."""
    assert hash_password("not a password", salt=b"0" * 16) == _DUMMY_HASH


def test_first_start_generates_a_password_once(tmp_path: Path) -> None:
    users = Users(tmp_path / "users.json")
    admin = ensure_admin(users, {})
    assert admin.source == "generated" and admin.generated and admin.changed
    assert users.check_password("admin", admin.generated)
    users.save()
    kept = ensure_admin(Users(tmp_path / "users.json"), {})  # kept, not regenerated
    assert kept.source == "kept" and kept.generated is None and not kept.changed


def test_nf_user_cli_and_live_key_login(daemon: Running, tmp_path: Path) -> None:
    key = paramiko.ECDSAKey.generate(bits=256)
    key_file = tmp_path / "id_ecdsa"
    key.write_private_key_file(str(key_file))
    (tmp_path / "id_ecdsa.pub").write_text(f"{key.get_name()} {key.get_base64()} ops@lab\n")
    state = str(daemon.state_dir)
    env = dict(os.environ, NF_PASSWORD="ops-password")
    subprocess.run(
        [NF, "user", "passwd", "ops", "--state-dir", state],
        env=env,
        check=True,
        capture_output=True,
        timeout=30,
    )
    subprocess.run(
        [
            NF,
            "user",
            "add-key",
            "ops",
            "--key",
            str(tmp_path / "id_ecdsa.pub"),
            "--state-dir",
            state,
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    listing = subprocess.run(
        [NF, "user", "list", "--state-dir", state],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert "ops: password, 1 key(s)" in listing
    bad = subprocess.run(
        [NF, "user", "add-key", "ops", "--key", str(key_file), "--state-dir", state],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "not an OpenSSH public key" in bad.stderr
    # the running daemon sees both without a restart
    with daemon.connect(username="ops", password=None, key_filename=str(key_file)) as m:
        assert "<name>demo</name>" in m.get_config("running").data_xml
    with daemon.connect(username="ops", password="ops-password") as m:
        assert m.session_id
    from ncclient.transport.errors import AuthenticationError

    with pytest.raises(AuthenticationError):
        daemon.connect(username="ops", password="wrong")
