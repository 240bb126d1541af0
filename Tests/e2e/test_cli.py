"""The operator's CLI: init, apply (valid and refused), tokens, audit verify."""
import json
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import BIN_DIR, ROOT

EXAMPLE = ROOT / "infra" / "draven.example.toml"


@pytest.fixture()
def state():
    d = Path(tempfile.mkdtemp(prefix="draven-cli-"))
    run("init", state=d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run(*args, state, check=True):
    return subprocess.run([str(BIN_DIR / "draven"), *args, "--state-dir", str(state)],
                          capture_output=True, text=True, check=check)


def count(state, sql):
    with sqlite3.connect(state / "draven.db") as c:
        return c.execute(sql).fetchone()[0]


def test_init_is_idempotent_and_keys_are_private(state):
    again = run("init", state=state)
    assert "up to date" in again.stdout and "kept" in again.stdout
    assert (state / "secrets" / "token-hash.key").stat().st_mode & 0o777 == 0o640
    assert count(state, "PRAGMA journal_mode") == "wal"


def test_example_config_applies_and_versions_are_audited(state):
    out = run("apply", "-f", str(EXAMPLE), state=state)
    assert "config version 1" in out.stdout
    assert count(state, "SELECT count(*) FROM environments") == 3
    assert count(state, "SELECT version FROM policies p JOIN environments e ON e.id = p.environment_id WHERE e.name = 'prod'") == 1
    # Re-applying the same file is a new version, but no policy changes.
    again = run("apply", "-f", str(EXAMPLE), state=state)
    assert "config version 2" in again.stdout and "policies changed" not in again.stdout
    assert count(state, "SELECT count(*) FROM audit WHERE action = 'config.apply'") == 2
    assert count(state, "SELECT count(*) FROM config_versions") == 2


BAD = {
    "lock mode": ('lock = "queue"', 'lock = "wait"', 'projects.shop.environments.prod.lock: must be "queue" or "reject"'),
    "typo": ("approvals = 2", "aprovals = 2", "projects.shop.environments.prod.aprovals: is not a known setting"),
    "unknown group": ('approver_groups = ["leads"]', 'approver_groups = ["admins"]', 'names "admins", which is not in [groups]'),
    "bad ref rule": ('refs = ["tag:v*"]', 'refs = ["v*"]', 'must be KIND:GLOB'),
    "bad duration": ('lease = "15m"', 'lease = "soon"', "projects.shop.environments.prod.lease: must be a duration"),
    "bad action": ('actions = ["deploy", "read"]', 'actions = ["deploy", "destroy"]', 'grants[0].actions: "destroy" must be'),
    "bad provider": ('provider = "github"', 'provider = "svn"', 'projects.shop.integration.provider: must be github, gitlab, bitbucket or bitbucket-dc'),
    "toml syntax": ('lock = "queue"', 'lock = ', "is not valid TOML"),
}


@pytest.mark.parametrize("name", BAD.keys())
def test_invalid_config_names_file_key_and_reason_and_applies_nothing(state, name):
    old, new, message = BAD[name]
    text = EXAMPLE.read_text()
    assert old in text
    bad = state / "bad.toml"
    bad.write_text(text.replace(old, new, 1))
    before = count(state, "SELECT count(*) FROM config_versions"), count(state, "SELECT count(*) FROM projects")
    r = run("apply", "-f", str(bad), state=state, check=False)
    assert r.returncode == 2, r
    assert str(bad) in r.stderr and message in r.stderr, r.stderr
    assert (count(state, "SELECT count(*) FROM config_versions"), count(state, "SELECT count(*) FROM projects")) == before


def test_policy_change_bumps_its_version(state):
    run("apply", "-f", str(EXAMPLE), state=state)
    changed = state / "changed.toml"
    changed.write_text(EXAMPLE.read_text().replace("approvals = 2", "approvals = 3", 1))
    out = run("apply", "-f", str(changed), state=state)
    assert "policies changed: shop/prod" in out.stdout
    assert count(state, "SELECT version FROM policies p JOIN environments e ON e.id = p.environment_id WHERE e.name = 'prod'") == 2


def test_tokens_are_shown_once_and_stored_hashed(state):
    run("apply", "-f", str(EXAMPLE), state=state)
    token = run("tokens", "create", "--person", "alice", "--name", "laptop", state=state).stdout.strip()
    assert token.startswith("drv_")
    listing = run("tokens", "list", state=state).stdout
    # The secret is everything after drv_<id>_ (it may itself contain "_").
    secret = token.split("_", 2)[2]
    assert "alice" in listing and "laptop" in listing and secret not in listing
    raw = (state / "draven.db").read_bytes() + (state / "draven.db-wal").read_bytes() if (state / "draven.db-wal").exists() else (state / "draven.db").read_bytes()
    assert token.encode() not in raw and secret.encode() not in raw
    unknown = run("tokens", "create", "--person", "mallory", state=state, check=False)
    assert unknown.returncode != 0 and "mallory" in unknown.stderr
    public_id = token.split("_")[1]
    assert "revoked" in run("tokens", "revoke", public_id, state=state).stdout
    assert run("tokens", "revoke", public_id, state=state, check=False).returncode != 0


def test_audit_verify_detects_an_edited_record(state):
    run("apply", "-f", str(EXAMPLE), state=state)
    run("tokens", "create", "--person", "bob", state=state)
    assert "intact" in run("audit", "verify", state=state).stdout
    with sqlite3.connect(state / "draven.db") as c:
        c.execute("UPDATE audit SET actor = 'mallory' WHERE id = 1")
    r = run("audit", "verify", state=state, check=False)
    assert r.returncode == 1 and "broken at record 1" in r.stderr


def test_commands_refuse_an_uninitialised_store():
    d = Path(tempfile.mkdtemp(prefix="draven-none-"))
    try:
        r = run("tokens", "list", state=d, check=False)
        assert r.returncode != 0 and "draven init" in r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_doctor_passes_a_sound_store_and_names_what_is_wrong_in_a_broken_one(state):
    run("apply", "-f", str(EXAMPLE), state=state)
    healthy = run("doctor", state=state)
    assert healthy.stdout.splitlines() == [
        "integrity: ok", "locks: ok", "events: ok", "outbox: ok", "audit: ok", "store healthy"]
    with sqlite3.connect(state / "draven.db") as c:
        c.execute("UPDATE audit SET actor = 'mallory' WHERE id = 1")
        c.execute("INSERT INTO outbox (kind, payload, state, next_attempt_at, created_at) "
                  "VALUES ('notify', '{}', 'dead', 0, 0)")
    broken = run("doctor", state=state, check=False)
    assert broken.returncode == 1, broken
    assert "audit/1: chain-broken: audit trail broken at record 1" in broken.stdout
    assert "outbox/1: notify row dead, with no reason recorded" in broken.stdout
    report = json.loads(run("doctor", "--json", state=state, check=False).stdout)
    assert report["ok"] is False and report["checks"]["locks"] == {"ok": True, "ran": True, "findings": [], "more": 0}
    assert [f["subject"] for f in report["checks"]["audit"]["findings"]] == ["audit/1"]
    missing = run("doctor", state=state / "nowhere", check=False)
    assert missing.returncode != 0 and "no store at" in missing.stderr
    (state / "draven.db").write_bytes(b"not a database, at all " * 400)
    for name in ("draven.db-wal", "draven.db-shm"):
        (state / name).unlink(missing_ok=True)
    garbage = run("doctor", state=state, check=False)
    assert garbage.returncode == 1 and "integrity: 1 problem(s)" in garbage.stdout
    assert "store: cannot read the store: SQLite error 26: file is not a database" in garbage.stdout, garbage.stdout
