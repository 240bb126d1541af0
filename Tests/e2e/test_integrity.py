"""Tamper evidence against someone with the functions' privileges (they can write the database):
the secrets store's generation floor (issue 15, defect 7) and the audit trail's signed
checkpoints (defect 6), through the real CLI and nginx + fcgiwrap."""
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import BIN_DIR, ROOT, assert_problem, launch

SECRETS = {"gh-hook": "canaryINTEGRITYhook-4e1d", "gh-token": "ghp_canaryINTEGRITYtoken",
           "bb-hook": "canaryINTEGRITYbb"}
PING = (ROOT / "events" / "github" / "ping.json").read_bytes()


@pytest.fixture(scope="module")
def world():
    config = (Path(__file__).parent / "draven.integrity.toml").read_text()
    with launch(config, people=("alice",), secrets=SECRETS, deliver="/bin/true") as stack:
        yield stack
        stack.assert_secrets_absent(SECRETS.values(), ("audit", "job_events", "outbox", "secrets_state"), store=True)


def ping(stack, secret=SECRETS["gh-hook"]):
    """A signed GitHub ping: webhook-receive must open the secrets store to check it."""
    headers = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": str(uuid.uuid4()), "X-GitHub-Hook-ID": "42",
               "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), PING, hashlib.sha256).hexdigest()}
    return stack.request("POST", "/hooks/github?project=hello", PING, headers=headers)


def full_snapshot(stack):
    """Every row of every table (a refusal changes nothing)."""
    with stack.db() as c:
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: c.execute(f"SELECT * FROM {t}").fetchall() for t in tables}


def write_db(stack, *statements):
    with sqlite3.connect(stack.state_dir / "draven.db", timeout=10) as c:
        for sql in statements:
            c.execute(sql)


# -- defect 7: secrets rollback protection outside the database ------------------------------------

def test_a_deleted_generation_record_does_not_let_an_older_secrets_file_back(world):
    stack = world
    store = stack.state_dir / "secrets" / "secrets.dsb"
    assert ping(stack).status == 200
    old = store.read_bytes()
    stack.draven("secrets", "set", "gh-hook", input="canaryINTEGRITYrotated-9b")
    assert ping(stack, secret="canaryINTEGRITYrotated-9b").status == 200
    generation = json.loads(stack.draven("secrets", "list", "--json").stdout)["generation"]
    # The functions' privileges: write the database (drop the ratchet row), put the old file back
    # (in production they cannot write the secrets directory; here the test plays an attacker who
    # got an old copy in by another way — the floor must still refuse it).
    write_db(stack, "DELETE FROM secrets_state")
    new = store.read_bytes()
    store.write_bytes(old)
    try:
        before = full_snapshot(stack)
        for secret in (SECRETS["gh-hook"], "canaryINTEGRITYrotated-9b"):
            assert_problem(ping(stack, secret=secret), 503, "store-not-ready")
        r = stack.draven("secrets", "verify", check=False)
        assert r.returncode == 5 and "rolled back" in r.stderr, r
        r = stack.draven("secrets", "list", check=False)
        assert r.returncode == 5, r
        assert full_snapshot(stack) == before  # not re-seeded at the old generation, nothing written
    finally:
        store.write_bytes(new)
    # The current file is accepted again (the floor re-seeds the record), and the admin's flows work.
    assert ping(stack, secret="canaryINTEGRITYrotated-9b").status == 200
    assert stack.rows("SELECT max_generation FROM secrets_state")[0][0] == generation
    stack.draven("secrets", "set", "gh-hook", input=SECRETS["gh-hook"])
    stack.draven("secrets", "rotate")
    assert f"generation {generation + 2}" in stack.draven("secrets", "verify").stdout
    assert ping(stack).status == 200


def test_no_record_and_no_floor_is_refused_until_the_admin_accepts_the_file(world):
    stack = world
    floor = stack.state_dir / "secrets" / "secrets.floor"
    saved = floor.read_bytes()
    write_db(stack, "DELETE FROM secrets_state")
    floor.unlink()
    try:
        before = full_snapshot(stack)
        assert_problem(ping(stack), 503, "store-not-ready")
        r = stack.draven("secrets", "verify", check=False)
        assert r.returncode == 5 and "no generation record" in r.stderr, r
        assert full_snapshot(stack) == before
        generation = json.loads(stack.rows("SELECT detail FROM audit WHERE action = 'secrets.generation' "
                                           "ORDER BY id DESC LIMIT 1")[0][0])["generation"]
        r = stack.draven("secrets", "verify", "--accept-rollback", str(generation))
        assert f"generation {generation}" in r.stdout
    except BaseException:
        floor.write_bytes(saved)
        raise
    assert floor.exists() and ping(stack).status == 200
    assert stack.rows("SELECT count(*) FROM audit WHERE action = 'secrets.accept_rollback'")[0][0] == 1


def cli(state, *args, env=None, input=None):
    return subprocess.run([str(BIN_DIR / "draven"), *args, "--state-dir", str(state)], capture_output=True, text=True,
                          input=input, env=env)


def test_a_fresh_store_writes_its_floor_and_its_checkpoint_key(tmp_path):
    state = tmp_path / "s"
    assert cli(state, "init").returncode == 0 and cli(state, "secrets", "init").returncode == 0
    secrets = state / "secrets"
    floor = secrets / "secrets.floor"
    assert floor.stat().st_mode & 0o777 == 0o644 and len(floor.read_bytes()) == 135
    assert cli(state, "secrets", "set", "x", input="canaryFRESH").returncode == 0
    assert "generation 2" in cli(state, "secrets", "verify").stdout
    # The checkpoint key is the admin's alone; the public key and the log are readable by all.
    assert (secrets / "audit-signing.key").stat().st_mode & 0o777 == 0o600
    assert (secrets / "audit.pub").stat().st_mode & 0o777 == 0o644
    assert (secrets / "audit.checkpoints").stat().st_mode & 0o777 == 0o644
    assert cli(state, "init").returncode == 0  # again: keys kept, no new checkpoint needed
    assert len((secrets / "audit.checkpoints").read_text().splitlines()) == 1


# -- defect 6: signed checkpoints of the audit trail ---------------------------------------------------

def digest(prev, at, actor, action, subject, outcome, detail):
    """Audit.digest: BLAKE2b-256 over length-prefixed fields (what an attacker can recompute)."""
    data = b"".join(str(len(f.encode())).encode() + b":" + f.encode()
                    for f in (prev, str(at), actor, action, subject, outcome, detail))
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def rechain(c, from_id):
    """Recomputes every hash from record `from_id` on, as someone who can write the database can."""
    prev = c.execute("SELECT hash FROM audit WHERE id < ? ORDER BY id DESC LIMIT 1", (from_id,)).fetchone()
    prev = prev[0] if prev else "0" * 64
    for row in c.execute("SELECT id, at, actor, action, subject, outcome, detail FROM audit WHERE id >= ? ORDER BY id",
                         (from_id,)).fetchall():
        h = digest(prev, *row[1:])
        c.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?", (prev, h, row[0]))
        prev = h


def forge_append(c, at):
    prev = c.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()[0]
    fields = (at, "alice", "deploy.approve", "job/1", "ok", "{}")
    c.execute("INSERT INTO audit (at, actor, action, subject, outcome, detail, prev_hash, hash) "
              "VALUES (?,?,?,?,?,?,?,?)", (*fields, prev, digest(prev, *fields)))


@pytest.fixture
def tamper(world):
    """Yields a function that saves the database as it is, then runs `change` on it; restored after the test."""
    stack = world
    path = stack.state_dir / "draven.db"
    saved = stack.state_dir / "audit-test.db"

    def run(change):
        with sqlite3.connect(path, timeout=10) as live, sqlite3.connect(saved) as copy:
            live.backup(copy)
        with sqlite3.connect(path, timeout=10) as c:
            change(c)
    yield run
    if saved.exists():
        with sqlite3.connect(saved) as copy, sqlite3.connect(path, timeout=10) as live:
            copy.backup(live)
        saved.unlink()


def verify(stack):
    r = stack.draven("audit", "verify", check=False)
    return r.returncode, r.stdout + r.stderr


def records_through_the_functions(stack, n=3):
    """Audit records written by the functions: deploys (audited ok) and refused requests."""
    for i in range(n):
        assert stack.deploy("alice", "plain", "prod", f"refs/heads/f{time.monotonic_ns()}").status == 201
        assert stack.request("GET", "/api/v1/locks", token="drv_nope_nope").status == 401


def checkpoint_log(stack):
    return (stack.state_dir / "secrets" / "audit.checkpoints").read_text()


def test_checkpoints_are_signed_by_draven_audit_checkpoint_and_by_sweep_when_the_head_moved(world):
    stack = world
    records_through_the_functions(stack)
    before = checkpoint_log(stack)
    stack.sweep_once()
    lines = checkpoint_log(stack)[len(before):].splitlines()
    assert len(lines) == 1 and lines[0].startswith("drvckpt1 ")
    head = stack.rows("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")[0]
    assert lines[0].split()[1:3] == [str(head[0]), head[1]]
    stack.sweep_once()  # the head did not move: no new checkpoint
    assert checkpoint_log(stack) == before + lines[0] + "\n"
    code, out = verify(stack)
    assert code == 0 and f"covers records up to {head[0]}" in out, out
    records_through_the_functions(stack, 1)
    after = stack.rows("SELECT count(*) FROM audit WHERE id > ?", head[0])[0][0]
    code, out = verify(stack)
    assert after > 0 and code == 0 and f"{after} after it, not yet covered" in out, out
    assert "record" in stack.draven("audit", "checkpoint").stdout


def test_a_checkpoint_goes_to_the_system_log_and_no_system_log_is_no_error(world, tmp_path):
    stack = world
    records_through_the_functions(stack, 1)
    path = tmp_path / "log.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.settimeout(5)
        env = dict(os.environ, DRAVEN_SYSLOG_SOCKET=str(path))
        r = cli(stack.state_dir, "audit", "checkpoint", env=env)
        assert r.returncode == 0 and "and the system log" in r.stdout, r
        datagram = listener.recv(4096).decode()
    last = checkpoint_log(stack).splitlines()[-1]
    assert datagram.startswith("<85>draven-audit[") and datagram.endswith("]: " + last)
    r = cli(stack.state_dir, "audit", "checkpoint", env=dict(os.environ, DRAVEN_SYSLOG_SOCKET=str(tmp_path / "none")))
    assert r.returncode == 0 and "no system log is listening" in r.stdout, r


@pytest.mark.parametrize("attack,kind,words", [
    ("drop the last records", "truncated", "records were deleted"),
    ("drop every record", "truncated", "the chain ends at record 0"),
    ("edit and recompute the later hashes", "rewritten", "hashes recomputed"),
    ("insert a record before the checkpoint and rechain", "rewritten", "hashes recomputed"),
    ("edit without recomputing", "chain-broken", "broken at record"),
    ("append a chained record dated before the checkpoint", "backdated", "dated"),
])
def test_tampering_with_checkpointed_history_is_named(world, tamper, attack, kind, words):
    stack = world
    records_through_the_functions(stack)
    stack.draven("audit", "checkpoint")
    assert verify(stack)[0] == 0
    head = stack.rows("SELECT max(id) FROM audit")[0][0]
    cp_at = int(checkpoint_log(stack).splitlines()[-1].split()[4])
    changes = {
        "drop the last records": lambda c: c.execute("DELETE FROM audit WHERE id > ?", (head - 2,)),
        "drop every record": lambda c: c.execute("DELETE FROM audit"),
        "edit and recompute the later hashes": lambda c: (
            c.execute("UPDATE audit SET actor = 'mallory' WHERE id = ?", (head - 3,)), rechain(c, head - 3)),
        "insert a record before the checkpoint and rechain": lambda c: (
            c.execute("DELETE FROM audit WHERE id = ?", (head - 1,)),
            c.execute("INSERT INTO audit (id, at, actor, action, subject, outcome, detail, prev_hash, hash) "
                      "VALUES (?, 1, 'mallory', 'x', 'y', 'ok', '{}', '', '')", (head - 1,)), rechain(c, 1)),
        "edit without recomputing": lambda c: c.execute("UPDATE audit SET outcome = outcome || 'x' WHERE id = ?",
                                                        (head - 1,)),
        "append a chained record dated before the checkpoint": lambda c: forge_append(c, cp_at - 3600),
    }
    tamper(changes[attack])
    log = checkpoint_log(stack)
    code, out = verify(stack)
    assert code == 1 and f"audit: {kind}: " in out and words in out, out
    if kind == "chain-broken":
        # The writer checks only what the latest checkpoint does not cover (it runs every minute);
        # signing a new head does not hide an edit of covered history: verify still names it.
        stack.draven("audit", "checkpoint")
        code, out = verify(stack)
        assert code == 1 and f"audit: {kind}: " in out, out
        return
    # The checkpoint writer refuses to sign a tampered head (sweep and the command alike).
    r = stack.draven("audit", "checkpoint", check=False)
    assert r.returncode == 1 and "nothing signed" in r.stderr, r
    stack.sweep_once()
    assert checkpoint_log(stack) == log


def test_a_chained_append_after_the_checkpoint_passes_but_stays_uncovered(world, tamper):
    """What the threat model concedes: records after the latest checkpoint are only checked for chaining."""
    stack = world
    records_through_the_functions(stack, 1)
    stack.draven("audit", "checkpoint")
    tamper(lambda c: forge_append(c, int(time.time())))
    code, out = verify(stack)
    assert code == 0 and "1 after it, not yet covered" in out, out


def test_records_without_a_checkpoint_say_so(world):
    stack = world
    log = stack.state_dir / "secrets" / "audit.checkpoints"
    saved = log.read_bytes()
    log.unlink()
    try:
        code, out = verify(stack)
        assert code == 1 and "audit: no-checkpoint: no checkpoint: " in out, out
        log.write_bytes(saved + b"drvckpt1 9 " + b"a" * 64 + b" 9 9 0000000000000000 " + b"A" * 88 + b"\n")
        code, out = verify(stack)
        assert code == 1 and "audit: bad-checkpoint: " in out, out
    finally:
        log.write_bytes(saved)
    assert verify(stack)[0] == 0


def test_the_production_units_keep_the_checkpoint_key_from_the_functions():
    """The layout the threat model rests on: the functions and the sweep run as `draven`, with write access to
    the state directory only; checkpoints are signed by the admin's unit, which alone may write the secrets dir."""
    units = ROOT / "infra" / "systemd"

    def settings(name):
        lines = [l.split("=", 1) for l in (units / name).read_text().splitlines() if "=" in l and not l.startswith("#")]
        return {k: v for k, v in lines}
    for name in ("fcgiwrap-draven.service", "draven-sweep.service", "draven-sweep-once.service"):
        s = settings(name)
        assert s["User"] == "draven" and "draven-secrets" not in s.get("ReadWritePaths", ""), name
        assert "audit" not in (units / name).read_text().split("LoadCredential", 1)[-1].split("\n", 1)[0], name
    checkpoint = settings("draven-audit-checkpoint.service")
    assert checkpoint["User"] != "draven" and "/var/lib/draven-secrets" in checkpoint["ReadWritePaths"]
    assert checkpoint["ExecStart"].endswith("draven audit checkpoint")
    assert settings("draven-audit-checkpoint.timer")["OnUnitActiveSec"] == "1min"
