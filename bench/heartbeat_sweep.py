"""Whole-process time of one heartbeat (runcgi: fed like fcgiwrap feeds it) and of one
`draven sweep --once` over 1,000 idle running jobs (hyperfine -N), on release binaries.
Uses the e2e harness (real state dir, secrets, a job dispatched to the fake provider).

    gcc -O2 -o /tmp/runcgi bench/c/runcgi.c -lsodium
    make release && .venv/bin/python bench/heartbeat_sweep.py      (RUNCGI=path to override)
Not part of `make bench` (which owns the served-throughput tables)."""
import hashlib, hmac, json, os, sqlite3, statistics, subprocess, sys, time
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "e2e")); sys.path.insert(0, str(ROOT / "infra"))
os.environ["BIN_DIR"] = str(ROOT / ".build-dist" / "bin")
from conftest import BIN_DIR, launch  # noqa
from demo_provider import FakeProvider  # noqa

SECRETS = {"gh-token": "ghp_x", "gh-hook": "h", "runner": "runner-secret-bench", "gl-trigger-token": "a", "gl-api-token": "b", "bb-token": "c"}
fake = FakeProvider().start()
config = (ROOT / "Tests/e2e/draven.heartbeat.toml").read_text().replace("@FAKE@", fake.url)
def summary(xs):
    xs = sorted(xs); return f"median {statistics.median(xs)/1000:.2f} ms, p10 {xs[len(xs)//10]/1000:.2f}, p90 {xs[len(xs)*9//10]/1000:.2f} (n={len(xs)})"
with launch(config, people=("alice",), secrets=SECRETS) as s:
    r = s.deploy("alice", "app", "poll", "refs/heads/main"); job = r.json["id"]
    s.wait_for(job, {"running"})
    token = s.rows("SELECT fencing_token FROM jobs WHERE id = ?", job)[0][0]
    body = json.dumps({"fencing_token": token, "progress": {"step": "deploy", "percent": 50, "message": "half way"}}).encode()
    ts = str(int(time.time()) + 100)  # valid for the next few minutes
    sig = "v1=" + hmac.new(SECRETS["runner"].encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    Path("/tmp/draven-heartbeat-body").write_bytes(body)
    env = ["-e", f"DRAVEN_STATE_DIR={s.state_dir}", "-e", "REQUEST_METHOD=POST", "-e", f"REQUEST_URI=/api/v1/jobs/{job}/heartbeat",
           "-e", f"DOCUMENT_URI=/api/v1/jobs/{job}/heartbeat", "-e", "CONTENT_TYPE=application/json", "-e", "REMOTE_ADDR=127.0.0.1",
           "-e", "GATEWAY_INTERFACE=CGI/1.1", "-e", "SERVER_PROTOCOL=HTTP/1.1", "-e", f"HTTP_X_DRAVEN_TIMESTAMP={ts}",
           "-e", f"HTTP_X_DRAVEN_SIGNATURE={sig}"]
    def runcgi(n=300):
        out = subprocess.run([os.environ.get("RUNCGI", "/tmp/runcgi"), "-n", str(n), "-w", "20", "-i", "/tmp/draven-heartbeat-body", *env, "--", str(BIN_DIR / "heartbeat")],
                             capture_output=True, text=True, check=True)
        d = json.loads(out.stdout); assert d["failures"] == 0, out.stderr
        return d
    holder = sqlite3.connect(s.state_dir / "draven.db"); holder.execute("SELECT 1").fetchall()  # as the sweep service does
    d = runcgi()
    print("heartbeat, store held open by another connection (sweep service):", "wall", summary(d["wall_us"]), "| cpu", summary(d["cpu_us"]))
    holder.close()
    d = runcgi()
    print("heartbeat, no other connection:", "wall", summary(d["wall_us"]), "| cpu", summary(d["cpu_us"]))
    assert s.rows("SELECT progress FROM jobs WHERE id = ?", job)[0][0]

    # 1,000 idle jobs: each running in its own environment, holding its lock with a live lease,
    # heard from the provider just now: a sweep pass checks them all and has nothing to do.
    s.request("POST", f"/api/v1/jobs/{job}/cancel", token=s.tokens["alice"])
    while s.rows("SELECT count(*) FROM outbox WHERE state IN ('pending', 'delivering')")[0][0]:
        time.sleep(0.05)
    cmd = f"{BIN_DIR}/draven sweep --once --state-dir {s.state_dir}"
    out = subprocess.run(["hyperfine", "-N", "-w", "3", "-r", "50", cmd], capture_output=True, text=True, check=True)
    print("sweep, empty store (no running jobs):", out.stdout)
    now = int(time.time())
    with sqlite3.connect(s.state_dir / "draven.db") as c:
        pid, eid, person, pv = c.execute("SELECT project_id, environment_id, requested_by, policy_version FROM jobs WHERE id = ?", (job,)).fetchone()
        pol = c.execute("SELECT * FROM policies WHERE environment_id = ?", (eid,)).fetchone()
        for i in range(1000):
            e = c.execute("INSERT INTO environments (project_id, name) VALUES (?, ?)", (pid, f"idle{i}")).lastrowid
            c.execute(f"INSERT INTO policies VALUES ({','.join('?' * len(pol))})", (e, *pol[1:]))
            j = c.execute("""INSERT INTO jobs (kind, project_id, environment_id, ref, ref_kind, state, requested_by, policy_version,
                             fencing_token, run_id, created_at, updated_at, provider_seen_at, heartbeat_at)
                             VALUES ('deploy', ?, ?, 'refs/heads/main', 'branch', 'running', ?, ?, 1, ?, ?, ?, ?, ?)""",
                          (pid, e, person, pv, str(900000 + i), now, now, now, now)).lastrowid
            c.execute("INSERT INTO locks (environment_id, job_id, fencing_token, acquired_at, lease_until) VALUES (?, ?, 1, ?, ?)",
                      (e, j, now, now + 3600))
    cmd = f"{BIN_DIR}/draven sweep --once --state-dir {s.state_dir}"
    before = s.snapshot()
    out = subprocess.run(["hyperfine", "-N", "-w", "3", "-r", "50", cmd], capture_output=True, text=True, check=True)
    print(out.stdout)
    after = s.snapshot()
    print({k: (before[k], after[k]) for k in before if before[k] != after[k] and k not in ("jobs", "locks")})
    assert after == before, "an idle sweep changed something"
    print("jobs in store:", s.rows("SELECT count(*), sum(state = 'running') FROM jobs")[0])
fake.stop()
