"""Outbound calls that go wrong, through real nginx + fcgiwrap, the real draven-deliver and libcurl,
against the fake provider on 127.0.0.1 (infra/demo_provider.py):

- a provider's error body that quotes the credential back never puts it in the store, the API or a log;
- a GitLab pipeline trigger token is never sent to read or cancel a pipeline;
- a poll the provider refuses is made once and backs off: no poll storm.

Sweep's clock is moved with DRAVEN_NOW; a job's silence is made by moving its updated_at back."""
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import BIN_DIR, ROOT, launch

sys.path.insert(0, str(ROOT / "infra"))
from demo_provider import FakeProvider  # noqa: E402

SECRETS = {
    "gh-token": "canaryPLAIN0gh0token0A1B2c3",  # no known token shape: only its exact bytes can find it
    "gh-hook": "canaryOUThook0x9",
    "gl-trigger": "glptt-canaryOUT0trigger0z7",
    "runner": "canaryOUTrunner0q4",
}
ENCODED = [base64.b64encode(v.encode()).decode().rstrip("=") for v in SECRETS.values()] + [
    quote(v, safe="") for v in SECRETS.values()]

CONFIG = """
[people.alice]
name = "Alice"
[[grants]]
person = "alice"
project = "*"
actions = ["deploy", "read", "rollback"]

[projects.app.integration]
provider = "github"
repo = "acme/app"
method = "workflow_dispatch"
api_url = "@FAKE@"
token_secret = "gh-token"
webhook_secret = "gh-hook"
runner_secret = "runner"
timeout = "2s"
pipelines = { "*" = "deploy.yml" }
[projects.app.environments.leak]
refs = ["branch:*"]
[projects.app.environments.pollleak]
refs = ["branch:*"]
lease = "1h"
[projects.app.environments.storm]
refs = ["branch:*"]
lease = "1h"

# A GitLab integration with only a pipeline trigger token: it may start pipelines, nothing else.
[projects.gl.integration]
provider = "gitlab"
repo = "acme/gl"
method = "trigger"
project_id = "42"
api_url = "@FAKE@/api/v4"
token_secret = "gl-trigger"
runner_secret = "runner"
[projects.gl.environments.prod]
refs = ["branch:*"]
lease = "1h"
"""


@pytest.fixture(scope="module")
def world():
    fake = FakeProvider().start()
    try:
        with launch(CONFIG.replace("@FAKE@", fake.url), people=("alice",), secrets=SECRETS) as stack:
            yield stack, fake
            tables = ("audit", "job_events", "outbox", "jobs")
            stack.assert_secrets_absent(list(SECRETS.values()) + ENCODED, tables, store=True)
            assert_nowhere(stack, list(SECRETS.values()) + ENCODED)
    finally:
        fake.stop()


# -- helpers ------------------------------------------------------------------------------------


def silent(stack, job, seconds=1000):
    """The provider has said nothing about `job` for `seconds` (the tests' clock for silence)."""
    with sqlite3.connect(stack.state_dir / "draven.db", timeout=10) as c:
        c.execute("UPDATE jobs SET updated_at = updated_at - ?, provider_seen_at = NULL WHERE id = ?", (seconds, job))


def sweep(stack, at, *args):
    env = dict(os.environ, DRAVEN_NOW=str(at))
    return subprocess.run([str(BIN_DIR / "draven"), "sweep", "--once", "--state-dir", str(stack.state_dir), *args],
                          env=env, capture_output=True, text=True, check=True)


def polls(stack, job):
    return stack.rows("SELECT state, last_error FROM outbox WHERE job_id = ? AND kind = 'poll' ORDER BY id", job)


def notes(stack, job, text):
    return [json.loads(d) for (d,) in stack.rows(
        "SELECT detail FROM job_events WHERE job_id = ? AND event = 'provider' AND detail LIKE ? ORDER BY id",
        job, f"%{text}%")]


def run_path(stack, job):
    return "/repos/acme/app/actions/runs/" + stack.rows("SELECT run_id FROM jobs WHERE id = ?", job)[0][0]


def github_webhook(stack, job):
    """A signed workflow_run webhook: the provider speaks about `job`'s run (still in progress)."""
    run_id = int(stack.rows("SELECT run_id FROM jobs WHERE id = ?", job)[0][0])
    run = {"id": run_id, "status": "in_progress", "conclusion": None}
    body = json.dumps({"action": "in_progress", "workflow_run": run,
                       "repository": {"full_name": "acme/app"}}).encode()
    sig = "sha256=" + hmac.new(SECRETS["gh-hook"].encode(), body, hashlib.sha256).hexdigest()
    r = stack.request("POST", "/hooks/github?project=app", body, headers={
        "X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": f"d-{job}-{time.time_ns()}", "X-Hub-Signature-256": sig})
    assert r.status == 200 and r.json["status"] == "applied", r


def assert_nowhere(stack, values):
    """Not in any table of the store (every column), nor in the store's files, nor in any log."""
    with stack.db() as c:
        tables = [t for (t,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        dump = json.dumps([c.execute(f"SELECT * FROM {t}").fetchall() for t in tables], default=str)
    # Read by another process: closing a descriptor of the store here would drop the POSIX locks
    # this process's open SQLite connections hold on it (fcntl semantics), and SQLite would then
    # rebuild the WAL index under them.
    store = [str(p) for p in stack.state_dir.glob("draven.db*") if p.is_file()]  # not the delivery socket
    files = subprocess.run(["cat", *store], capture_output=True, check=True).stdout
    logs = "".join(p.read_text(errors="replace") for p in (stack.state_dir / "run").rglob("*") if p.is_file())
    for v in values:
        assert v not in dump, v
        assert v.encode() not in files, v
        assert v not in logs, v


# -- 9: a provider's error body carries the credential -------------------------------------------

def test_a_dispatch_refusal_quoting_the_token_keeps_the_message_but_not_the_token(world):
    stack, fake = world
    fake.script("/repos/acme/app/actions/workflows/",
                {"status": 401, "echo": True, "body": {"message": "Bad credentials"}})
    r = stack.deploy("alice", "app", "leak", "refs/heads/main")
    assert r.status == 201, r
    job = r.json["id"]
    assert stack.wait_for(job, {"failed"}) == "failed"
    # The provider did quote it back, in every form.
    [sent] = [x for x in fake.received("/repos/acme/app/actions/workflows/") if x["answered"] == 401]
    assert sent["headers"]["Authorization"] == "Bearer " + SECRETS["gh-token"]
    [(reason,)] = stack.rows(
        "SELECT json_extract(detail, '$.reason') FROM job_events WHERE job_id = ? AND to_state = 'failed'", job)
    assert reason.startswith("github refused the dispatch (HTTP 401): Bad credentials: you sent "), reason
    assert "[redacted]" in reason, reason
    assert "Authorization: Bearer [redacted]" in reason and len(reason.encode()) <= 500, reason
    [(last_error,)] = stack.rows("SELECT last_error FROM outbox WHERE job_id = ? AND kind = 'dispatch'", job)
    assert last_error == reason
    answer = stack.request("GET", f"/api/v1/jobs/{job}", token=stack.tokens["alice"])
    assert answer.status == 200 and b"Bad credentials" in answer.body, answer
    for value in [SECRETS["gh-token"]] + ENCODED:
        assert value.encode() not in answer.body
    assert_nowhere(stack, list(SECRETS.values()) + ENCODED)


def test_a_poll_refusal_quoting_the_token_keeps_the_message_but_not_the_token(world):
    stack, fake = world
    job = stack.running_job("app", "pollleak")[0]
    silent(stack, job)
    fake.script(run_path(stack, job), {"status": 401, "echo": True, "body": {"message": "Bad credentials"}})
    sweep(stack, int(time.time()))
    [(state, last_error)] = polls(stack, job)
    assert state == "dead" and "refused the poll (401): Bad credentials: you sent " in last_error, last_error
    assert "Bearer [redacted]" in last_error and len(last_error.encode()) <= 500, last_error
    [note] = notes(stack, job, "refused the poll")
    assert note["poll"] == "failed: " + last_error
    answer = stack.request("GET", f"/api/v1/jobs/{job}", token=stack.tokens["alice"])
    assert answer.status == 200
    for value in [SECRETS["gh-token"]] + ENCODED:
        assert value.encode() not in answer.body
    assert_nowhere(stack, list(SECRETS.values()) + ENCODED)


# -- 3: a trigger token is not an API token -----------------------------------------------------

def test_apply_warns_about_an_integration_draven_cannot_poll_or_cancel(world):
    stack, _ = world
    config = stack.state_dir / "draven.toml"
    before = stack.rows("SELECT max(id) FROM config_versions")[0][0]
    for args in (("--dry-run",), ()):
        out = stack.draven("apply", "-f", str(config), *args)
        assert out.returncode == 0, out
        [warning] = [line for line in out.stderr.splitlines() if "warning" in line]
        assert "projects.gl.integration" in warning and "api_token_secret" in warning, out
        assert "will not poll or cancel" in warning, out
        assert "projects.app" not in out.stderr
    # A warning, not an error: it was applied (once: the dry run changed nothing).
    assert stack.rows("SELECT max(id) FROM config_versions")[0][0] == before + 1


def test_a_gitlab_trigger_token_is_never_sent_to_read_or_cancel_a_pipeline(world):
    stack, fake = world
    job = stack.running_job("gl", "prod")[0]
    [dispatch] = [r for r in fake.received("/api/v4/projects/42/trigger/pipeline")
                  if f"%5BJOB_ID%5D={job}&".encode() in r["body"]]
    assert f"token={SECRETS['gl-trigger']}&".encode() in dispatch["body"] and "PRIVATE-TOKEN" not in dispatch["headers"]
    run = stack.rows("SELECT run_id FROM jobs WHERE id = ?", job)[0][0]
    # Said once, when the run started.
    [note] = notes(stack, job, "not polled or cancelled by draven")
    assert "trigger token" in note["poll"] and "api_token_secret" in note["poll"], note
    assert "webhooks and the lease" in note["poll"], note
    # Silent for long: sweep does not poll it (no outbox row, no call), however often it runs.
    silent(stack, job)
    now = int(time.time())
    for i in range(3):
        sweep(stack, now + 400 * i)
    assert polls(stack, job) == []
    assert fake.received(f"/api/v4/projects/42/pipelines/{run}") == []
    # A cancel ends the job; the pipeline is not asked to stop with the trigger token.
    r = stack.request("POST", f"/api/v1/jobs/{job}/cancel", {"reason": "wrong ref"}, token=stack.tokens["alice"])
    assert r.status == 200 and r.json["state"] == "cancelled", r
    deadline = time.monotonic() + 10
    while stack.rows("SELECT state FROM outbox WHERE job_id = ? AND kind = 'cancel'", job) in (
            [], [("pending",)], [("delivering",)]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [(state, error)] = stack.rows("SELECT state, last_error FROM outbox WHERE job_id = ? AND kind = 'cancel'", job)
    assert state == "dead" and error.startswith("not sent: ") and "trigger token" in error, error
    [cancel_note] = notes(stack, job, "not sent: ")
    assert cancel_note["cancel"] == "failed: " + error
    sweep(stack, now + 2000)
    assert fake.received(f"/api/v4/projects/42/pipelines/{run}") == []
    for request in fake.received():
        assert request["headers"].get("PRIVATE-TOKEN") != SECRETS["gl-trigger"], request["path"]


# -- 1: no poll storm ---------------------------------------------------------------------------

def test_a_refused_poll_is_made_once_and_backs_off_until_the_provider_speaks(world):
    stack, fake = world
    job = stack.running_job("app", "storm")[0]
    silent(stack, job)
    path = run_path(stack, job)
    # The provider refuses every poll (a run it no longer knows), however often it is asked.
    fake.script(path, *[{"status": 404, "body": {"message": "Not Found"}}] * 100)
    t0 = int(time.time())
    # Sweep after sweep, as a timer would run it, and as the service (every 200 ms, its own clock).
    for _ in range(15):
        sweep(stack, t0, "--poll-after", "60s")
    service = subprocess.Popen([str(BIN_DIR / "draven"), "sweep", "--every", "200ms", "--poll-after", "60s",
                                "--state-dir", str(stack.state_dir)], env=dict(os.environ, DRAVEN_NOW=str(t0)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    service.terminate()
    service.communicate(timeout=10)
    # One poll, one note in the job's history; the job goes on.
    assert len(fake.received(path)) == 1
    [(state, error)] = polls(stack, job)
    assert state == "dead" and "refused the poll (404): Not Found" in error, error
    assert len(notes(stack, job, "refused the poll")) == 1
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", job) == [("running",)]
    fake.unscript(path)

    # The provider speaks (a webhook): polling resumes one silence period later, well before the backoff ends.
    while int(time.time()) <= t0:
        time.sleep(0.05)
    github_webhook(stack, job)
    [(seen,)] = stack.rows("SELECT provider_seen_at FROM jobs WHERE id = ?", job)
    sweep(stack, seen + 59, "--poll-after", "60s")
    assert len(fake.received(path)) == 1
    sweep(stack, seen + 60, "--poll-after", "60s")
    assert len(fake.received(path)) == 2 and polls(stack, job)[-1][0] == "delivered"

    # A poll that answers "still running" is word from the provider: one per silence period, no storm.
    for at in [seen + 60] * 5 + list(range(seen + 61, seen + 120, 7)):
        sweep(stack, at, "--poll-after", "60s")
    assert len(fake.received(path)) == 2
    sweep(stack, seen + 120, "--poll-after", "60s")
    assert len(fake.received(path)) == 3

    # Refused again: the next poll waits twice the period (or for the provider), then resumes.
    fake.script(path, *[{"status": 401, "body": {"message": "Bad credentials"}}] * 100)
    refused = seen + 180
    sweep(stack, refused, "--poll-after", "60s")
    assert len(fake.received(path)) == 4 and polls(stack, job)[-1][0] == "dead"
    for at in range(refused, refused + 120, 10):
        sweep(stack, at, "--poll-after", "60s")
    assert len(fake.received(path)) == 4
    assert len(notes(stack, job, "refused the poll")) == 2
    fake.unscript(path)
    sweep(stack, refused + 120, "--poll-after", "60s")
    assert len(fake.received(path)) == 5 and polls(stack, job)[-1][0] == "delivered"
    assert [s for s, _ in polls(stack, job)] == ["dead", "delivered", "delivered", "dead", "delivered"]

    # The job still ends by its lease.
    [(lease_until,)] = stack.rows("SELECT lease_until FROM locks WHERE job_id = ?", job)
    out = sweep(stack, lease_until + 1, "--poll-after", "60s")
    assert f"#{job}" in out.stdout.split("timed out", 1)[1].split(";")[0].split(), out
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", job) == [("timed_out",)]
