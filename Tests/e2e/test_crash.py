"""Crash safety through real nginx + fcgiwrap: mixed load (triggers, webhooks, votes, heartbeats,
runner callbacks, cancels, status reads) from a few threads while functions, the deliverers they exec
(draven-deliver) and the `draven sweep` service are SIGKILLed — only processes this test's own stack
started, found by walking /proc from the stack's fcgiwrap and sweep PIDs (never by name). Then the
invariants, with `draven doctor` and on their own: the store's integrity, one lock holder per
environment and a job that has not ended, every job's events a path ending in its state, no outbox row
lost (delivered, dead with a reason, or still due: a `draven sweep --once` with a local provider drains
what is due), the audit chain; no 5xx but the 502 of a killed function; every job answered 201 exists.
Bounded: ~25 s of load, about a minute in all. Prints its figures (run with -s to see them)."""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from attacks import PEOPLE, SECRETS, TERMINAL, config, doctor, github_headers, gitlab_headers, runner_headers, secrets
from conftest import BIN_DIR, ROOT, launch

sys.path.insert(0, str(ROOT / "infra"))
from demo_provider import FakeProvider  # noqa: E402

LOAD_SECONDS = float(os.environ.get("CRASH_LOAD_SECONDS", "25"))
THREADS = 4
KILL_SHARE = 0.25  # of the function and deliverer processes seen alive
TARGETS = [
    ("app", "e0"),
    ("app", "e1"),
    ("app", "e2"),
    ("app", "e3"),
    ("gl", "e0"),
    ("gl", "e1"),
    ("bb", "e0"),
    ("bb", "e1"),
]


# -- the stack's own processes, from /proc -------------------------------------------------------------


def proc_table():
    """{pid: (ppid, comm)} of every live, non-zombie process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            table[int(entry.name)] = (int(fields[1]), comm)
    return table


def descendants(root, table):
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


class Killer:
    """SIGKILLs the functions and deliverers under the stack's fcgiwrap (not fcgiwrap itself), and now
    and then the sweep service (restarted as stack.sh starts it, its PID written where stack.sh stop
    looks)."""

    def __init__(self, stack):
        self.stack = stack
        self.run_dir = stack.state_dir / "run"
        self.fcgiwrap = int((self.run_dir / "fcgiwrap.pid").read_text())
        self.kills = Counter()
        self.spared = 0
        self.stop = threading.Event()

    def sweep_pid(self):
        return int((self.run_dir / "sweep.pid").read_text())

    def kill(self, pid, what):
        try:
            os.kill(pid, signal.SIGKILL)
            self.kills[what] += 1
        except ProcessLookupError:
            pass

    def functions(self):
        table = proc_table()
        return [(pid, table[pid][1]) for pid in descendants(self.fcgiwrap, table) if table[pid][1] != "fcgiwrap"]

    def restart_sweep(self):
        env = {"PATH": "/usr/bin:/bin", "DRAVEN_SECRETS_DIR": str(self.stack.state_dir / "secrets")}
        log = open(self.run_dir / "sweep.log", "ab")
        p = subprocess.Popen(
            [
                str(BIN_DIR / "draven"),
                "sweep",
                "--every",
                "1s",
                "--state-dir",
                str(self.stack.state_dir),
                "--secrets-dir",
                str(self.stack.state_dir / "secrets"),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        (self.run_dir / "sweep.pid").write_text(str(p.pid))
        self.sweep_process = p

    def run(self):
        rng = random.Random(15)
        next_sweep_kill = time.monotonic() + 4
        restart_at = None
        seen = set()  # (pid, program): a function that execs draven-deliver is decided on again
        while not self.stop.is_set():
            for pid, comm in self.functions():
                if (pid, comm) not in seen:
                    seen.add((pid, comm))
                    if rng.random() < KILL_SHARE:
                        self.kill(pid, comm)
                    else:
                        self.spared += 1
            if time.monotonic() >= next_sweep_kill:
                pid = self.sweep_pid()
                table = proc_table()
                if pid in table and table[pid][1] == "draven":
                    self.kill(pid, "draven sweep")
                    # Down for a while: functions exec draven-deliver meanwhile (no service on the
                    # socket), and those deliverers are killed too.
                    restart_at = time.monotonic() + 1.5
                next_sweep_kill = time.monotonic() + 5
            if restart_at is not None and time.monotonic() >= restart_at:
                self.restart_sweep()
                restart_at = None
            time.sleep(0.002)
        if restart_at is not None:
            self.restart_sweep()


# -- the load ----------------------------------------------------------------------------------------


class Load:
    def __init__(self, stack):
        self.stack = stack
        self.lock = threading.Lock()
        self.statuses = Counter()
        self.created = {}  # job id -> who asked
        self.errors = []
        self.requests = 0
        self.ops = Counter()  # requests answered, per kind
        self.local = threading.local()

    def send(self, method, path, body=None, token=None, headers=None):
        try:
            reply = self.stack.request(method, path, body, token=token, headers=headers)
        except Exception as e:  # noqa: BLE001 — counted, and the test asserts there were none
            with self.lock:
                self.errors.append(f"{method} {path}: {e!r}")
                self.requests += 1
            return None
        with self.lock:
            self.statuses[reply.status] += 1
            self.ops[self.local.kind] += 1
            self.requests += 1
        return reply

    def pick(self, rng, states):
        """A random job of this test's in one of `states` (read from the store, as a runner would know it)."""
        marks = ", ".join("?" * len(states))
        rows = self.stack.rows(
            "SELECT j.id, j.state, j.fencing_token, j.run_id, p.name FROM jobs j "
            "JOIN projects p ON p.id = j.project_id "
            f"WHERE j.state IN ({marks}) ORDER BY random() LIMIT 1",
            *sorted(states),
        )
        if not rows or rows[0][0] not in self.created:
            return None, None
        return rows[0][0], rows[0][1:]

    def trigger(self, rng):
        project, env = rng.choice(TARGETS)
        who = rng.choice(("alice", "bob"))
        r = self.send(
            "POST",
            "/api/v1/deploys",
            {"project": project, "environment": env, "ref": "main", "reason": "crash"},
            token=self.stack.tokens[who],
        )
        if r is not None and r.status == 201:
            with self.lock:
                self.created[r.json["id"]] = who

    def webhook(self, rng):
        job, row = self.pick(rng, {"running"})
        if not job or not row[2]:
            return
        _, _, run_id, project = row
        if project == "app":
            status, conclusion = rng.choice([("in_progress", None), ("completed", "success"), ("completed", "failure")])
            body = json.dumps(
                {
                    "action": "completed" if conclusion else "in_progress",
                    "workflow_run": {"id": int(run_id), "status": status, "conclusion": conclusion},
                    "repository": {"full_name": "acme/app"},
                }
            ).encode()
            self.send("POST", "/hooks/github?project=app", body, headers=github_headers(body))
        elif project == "gl":
            body = json.dumps(
                {
                    "object_kind": "pipeline",
                    "object_attributes": {"id": int(run_id), "status": rng.choice(["running", "success", "failed"])},
                    "project": {"path_with_namespace": "acme/gl"},
                }
            ).encode()
            self.send("POST", "/hooks/gitlab?project=gl", body, headers=gitlab_headers(body))
        else:
            self.callback(rng, job, row)

    def callback(self, rng, job=None, row=None):
        if job is None:
            job, row = self.pick(rng, {"running"})
        if not job:
            return
        body = json.dumps(
            {
                "job_id": job,
                "fencing_token": row[1],
                "result": rng.choice(["succeeded", "failed"]),
                "log_url": "https://ci.example/log",
            }
        ).encode()
        self.send("POST", "/hooks/runner", body, headers=runner_headers(body))

    def heartbeat(self, rng):
        job, row = self.pick(rng, {"running"})
        if job:
            body = json.dumps(
                {"fencing_token": row[1], "progress": {"step": "deploy", "percent": rng.randint(0, 100)}}
            ).encode()
            self.send("POST", f"/api/v1/jobs/{job}/heartbeat", body, headers=runner_headers(body))

    def vote(self, rng):
        job, _ = self.pick(rng, {"awaiting_approval"})
        if job:
            voter = "bob" if self.created[job] == "alice" else "alice"
            self.send("POST", f"/api/v1/jobs/{job}/approvals", {"decision": "approve"}, token=self.stack.tokens[voter])

    def cancel(self, rng):
        job, _ = self.pick(rng, {"queued", "running", "awaiting_approval"})
        if job:
            self.send("POST", f"/api/v1/jobs/{job}/cancel", {"reason": "crash test"}, token=self.stack.tokens["alice"])

    def read(self, rng):
        path = rng.choice(["/api/v1/jobs?limit=20", "/api/v1/locks", "/metrics"])
        with self.lock:
            if self.created and rng.random() < 0.5:
                path = f"/api/v1/jobs/{rng.choice(list(self.created))}"
        self.send("GET", path, token=self.stack.tokens["carol" if "/jobs/" in path else "alice"])

    def worker(self, seed, until):
        rng = random.Random(seed)
        ops = [
            (self.trigger, 4),
            (self.webhook, 3),
            (self.callback, 1),
            (self.heartbeat, 3),
            (self.vote, 2),
            (self.cancel, 1),
            (self.read, 3),
        ]
        population = [op for op, weight in ops for _ in range(weight)]
        while time.monotonic() < until:
            op = rng.choice(population)
            self.local.kind = op.__name__
            op(rng)


# -- the invariants, on their own (draven doctor checks them too) ----------------------------------------


def independent_checks(stack):
    problems = []
    assert stack.rows("PRAGMA integrity_check") == [("ok",)]
    assert stack.rows("PRAGMA foreign_key_check") == []
    for env, job, state, job_env, token, job_token in stack.rows(
        "SELECT l.environment_id, l.job_id, j.state, j.environment_id, l.fencing_token, j.fencing_token FROM locks l "
        "LEFT JOIN jobs j ON j.id = l.job_id WHERE l.job_id IS NOT NULL"
    ):
        if (
            state is None
            or state in TERMINAL
            or state not in ("dispatching", "running")
            or job_env != env
            or token != job_token
        ):
            problems.append(f"lock of environment {env}: job {job} {state} token {job_token} vs {token}")
    for env, n in stack.rows(
        "SELECT environment_id, count(*) FROM jobs WHERE state IN ('dispatching', 'running') GROUP BY 1"
    ):
        if n > 1:
            problems.append(f"environment {env} has {n} lock-holding jobs")
    # Each job's state changes chain (from = the previous to) and end in its state; which steps the
    # state machine allows is draven doctor's to check, from the table itself.
    events = {}
    for job, event, frm, to in stack.rows(
        "SELECT job_id, event, from_state, to_state FROM job_events "
        "WHERE event IN ('created', 'transition') ORDER BY job_id, id"
    ):
        events.setdefault(job, []).append((event, frm, to))
    for job, state in stack.rows("SELECT id, state FROM jobs"):
        path = events.get(job, [])
        if not path or path[0] != ("created", None, "pending"):
            problems.append(f"job {job}: history does not start with created")
            continue
        for (_, _, prev), (_, frm, _) in zip(path, path[1:]):
            if frm != prev:
                problems.append(f"job {job}: {prev} then a transition from {frm}")
        if path[-1][2] != state:
            problems.append(f"job {job}: history ends in {path[-1][2]}, job is {state}")
    horizon = int(time.time()) + 86400
    for row in stack.rows("SELECT id, kind, state, next_attempt_at, delivered_at, last_error FROM outbox"):
        _, _, state, due, delivered, error = row
        if not (
            (state == "delivered" and delivered)
            or (state == "dead" and error)
            or (state in ("pending", "delivering") and due <= horizon)
        ):
            problems.append(f"outbox row lost: {row}")
    for (job,) in stack.rows(
        "SELECT id FROM jobs j WHERE state = 'dispatching' AND NOT EXISTS (SELECT 1 FROM outbox o "
        "WHERE o.job_id = j.id AND o.kind = 'dispatch' AND o.state IN ('pending', 'delivering'))"
    ):
        problems.append(f"job {job} dispatching without a dispatch to deliver")
    verify = stack.draven("audit", "verify", check=False)
    if verify.returncode != 0:
        problems.append(verify.stderr.strip())
    return problems


@pytest.fixture(scope="module")
def world():
    fake = FakeProvider()
    fake.server.handle_error = lambda *args: None  # a deliverer killed mid-call resets its connection: expected here
    fake.start()
    try:
        with launch(config(fake.url), people=PEOPLE, secrets=secrets(fake.url), sweep_every="1s") as stack:
            yield stack, fake
    finally:
        fake.stop()


def test_kills_under_mixed_load_lose_nothing_and_leave_a_sound_store(world):
    stack, fake = world
    started = time.monotonic()
    # Some dispatches and polls answer slowly, so their deliverers are alive to be killed mid-call.
    fake.script(
        "/repos/acme/app/actions/workflows/",
        *[
            {
                "status": 200,
                "delay": 0.4,
                "body": {
                    "workflow_run_id": 900000 + n,
                    "html_url": f"https://github.example/acme/app/actions/runs/{900000 + n}",
                },
            }
            for n in range(40)
        ],
    )
    load, killer = Load(stack), Killer(stack)
    until = time.monotonic() + LOAD_SECONDS
    threads = [threading.Thread(target=load.worker, args=(n, until)) for n in range(THREADS)]
    kt = threading.Thread(target=killer.run)
    kt.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    killer.stop.set()
    kt.join()
    if killer.sweep_pid() not in proc_table():
        killer.restart_sweep()

    # What is due drains: sweeps with the clock moved past the claim leases of killed deliverers (3 min),
    # short of the runs' leases (10 min), against the same fake provider.
    time.sleep(1.5)
    for later in (200, 400):
        stack.sweep_once(later)
    still_due = stack.rows(
        "SELECT count(*) FROM outbox WHERE state IN ('pending', 'delivering') AND next_attempt_at <= ?",
        int(time.time()) + 400,
    )[0][0]

    # No committed job lost; no 5xx but the 502 of a killed function.
    known = {job for (job,) in stack.rows("SELECT id FROM jobs")}
    lost = sorted(set(load.created) - known)
    fives = {s: n for s, n in load.statuses.items() if s >= 500}
    figures = {
        "kills": dict(killer.kills),
        "kills_total": sum(killer.kills.values()),
        "seen_alive_and_spared": killer.spared,
        "requests": load.requests,
        "by_kind": dict(load.ops),
        "statuses": dict(sorted(load.statuses.items())),
        "jobs_created_201": len(load.created),
        "lost_jobs": lost,
        "client_errors": load.errors,
        "outbox": dict(stack.rows("SELECT state, count(*) FROM outbox GROUP BY 1")),
        "jobs": dict(stack.rows("SELECT state, count(*) FROM jobs GROUP BY 1")),
        "due_after_sweep": still_due,
        "seconds": round(time.monotonic() - started, 1),
    }
    print("\ncrash figures:", json.dumps(figures))
    assert load.errors == [], load.errors
    assert lost == [], lost
    assert set(fives) <= {502}, fives
    assert 500 not in load.statuses
    assert load.requests >= 200 and len(load.created) >= 20, figures
    assert killer.kills["draven sweep"] >= 2, figures
    assert killer.kills["draven-deliver"] >= 3, figures
    assert sum(n for what, n in killer.kills.items() if what not in ("draven sweep", "draven-deliver")) >= 3, figures
    assert all(load.ops[kind] > 0 for kind in ("trigger", "webhook", "heartbeat", "vote", "read")), figures
    assert still_due == 0, stack.rows("SELECT * FROM outbox WHERE state IN ('pending', 'delivering')")

    # The invariants: draven doctor, and each on its own.
    result = doctor(stack)
    assert result.returncode == 0, result.stdout + result.stderr
    assert independent_checks(stack) == []
