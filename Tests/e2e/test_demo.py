"""The demo path as a newcomer takes it: `make run`, then every command it prints, in order, pasted
into a shell. The first deploy ends `succeeded` within seconds and the queued one starts after it;
the walk-through's approval, failure-that-rolls-back and cancel do what the text says; `make stop`
leaves nothing running — no runner, no deploy it started."""
import json
import os
import socket
import subprocess
import time

from conftest import BIN_DIR, ROOT, leftover_processes


def free_pair():
    """A free port whose next port is free too (make run's stand-in CI listens on PORT+1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise AssertionError("no free pair of ports")


def shell(command):
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    return done.stdout


def until(read, check, timeout=30):
    """Runs `read` until `check(result)` holds; returns the result and the seconds it took."""
    start = time.monotonic()
    while True:
        value = read()
        if check(value):
            return value, time.monotonic() - start
        assert time.monotonic() - start < timeout, value
        time.sleep(0.2)


def test_make_run_and_its_printed_walk_through(tmp_path):
    state = tmp_path / "state"
    port = free_pair()
    make = ["make", "-s", "--no-print-directory", "-o", "release", f"STATE_DIR={state}", f"PORT={port}", f"BIN_DIR={BIN_DIR}"]
    started = subprocess.run([*make, "run"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        printed = started.stdout
        # The commands to paste are the lines indented by exactly two spaces.
        commands = [line[2:] for line in printed.splitlines() if line.startswith("  ") and line[2] != " "]
        assert len(commands) == 18, printed
        token = (state / "demo-token").read_text().strip()
        assert token not in printed  # the commands read the tokens from their files

        def job(n):
            return json.loads(shell(commands[2].replace("/api/v1/jobs/1", f"/api/v1/jobs/{n}")))

        # 1. The first deploy, twice: dispatched, then queued behind it.
        first, second = json.loads(shell(commands[0])), json.loads(shell(commands[1]))
        assert (first["id"], first["state"], second["id"], second["state"]) == (1, "dispatching", 2, "queued")
        shown, took = until(lambda: json.loads(shell(commands[2])), lambda j: j["state"] in {"succeeded", "failed"})
        assert shown["state"] == "succeeded" and took < 20, (took, shown)
        assert shown["progress"]["step"] in {"build", "migrate", "switch"}, shown  # the runner's heartbeats
        [done] = [e for e in shown["events"] if e["to"] == "succeeded"]
        assert done["actor"] == "runner" and done["detail"]["release_id"].endswith("-develop"), done
        log = shell(commands[3])
        assert "[deploy] switch (90%)" in log and "draven-runner: reported succeeded (200)" in log, log
        # The queued job started when the first ended, and ran the same way.
        assert until(lambda: job(2), lambda j: j["state"] == "succeeded")[0]["fencing_token"] == 2

        # 2. The approval: the asker's own vote is refused, two other leads' start it.
        prod = json.loads(shell(commands[4]))
        assert (prod["id"], prod["state"], prod["ref"]) == (3, "awaiting_approval", "refs/tags/v1.0.0")
        own = json.loads(shell(commands[5]))
        assert own["status"] == 403 and own["rule"] == "self_approval", own
        assert json.loads(shell(commands[6]))["approvals"] == 1
        last = json.loads(shell(commands[7]))
        assert last["approvals"] == 2 and last["job"]["state"] == "dispatching", last
        assert until(lambda: json.loads(shell(commands[8])), lambda j: j["state"] == "succeeded")[0]["id"] == 3

        # 3. The failure that rolls back.
        failing = json.loads(shell(commands[9]))
        assert (failing["id"], failing["ref"]) == (4, "refs/heads/fail-login")
        assert until(lambda: job(4), lambda j: j["state"] in {"failed", "succeeded"})[0]["state"] == "failed"
        rollback, _ = until(lambda: json.loads(shell(commands[10])), lambda j: j["state"] in {"succeeded", "failed"})
        assert (rollback["kind"], rollback["parent_job_id"], rollback["ref"], rollback["state"]) == (
            "rollback", 4, "refs/heads/develop", "succeeded"), rollback
        releases = json.loads(shell(commands[11]))
        assert releases["live"]["job_id"] == 5, releases

        # 4. The cancel: the job ends at once, and the stand-in CI stops the run.
        slow = json.loads(shell(commands[12]))
        assert slow["id"] == 6
        until(lambda: job(6), lambda j: j.get("heartbeat_at") is not None)
        cancelled = json.loads(shell(commands[13]))
        assert cancelled["state"] == "cancelled", cancelled

        def runner_of_job_6():
            return [p for p in leftover_processes(state) if "draven-runner.sh" in p or "deploy/run.sh" in p]
        until(runner_of_job_6, lambda found: found == [], timeout=15)
        assert "[deploy] fetch (10%)" in (state / "run" / "demo-ci" / "job-6.log").read_text()

        # The listings and the audit trail.
        assert [j["id"] for j in json.loads(shell(commands[14]))["jobs"]] == [6, 5, 4, 3, 2, 1]
        locks = json.loads(shell(commands[15]))
        assert not any(lock.get("job_id") == 6 for lock in locks["locks"]), locks
        assert "audit trail intact" in shell(commands[16])
        assert shell(commands[17]).startswith(f"http://127.0.0.1:{port}/ui/link/")
        # The runner secret draven and the stand-in CI share is in no log and was never printed.
        secret = (state / "demo-ci-runner-secret").read_text().strip()
        logs = "".join(p.read_text(errors="replace") for p in (state / "run").rglob("*.log"))
        assert len(secret) == 64 and secret not in logs and secret not in printed
        assert (state / "demo-ci-runner-secret").stat().st_mode & 0o077 == 0
    finally:
        subprocess.run([*make, "stop"], cwd=ROOT, capture_output=True, text=True, timeout=60)
        left = leftover_processes(state)
    assert left == [], left
