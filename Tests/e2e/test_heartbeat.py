"""heartbeat, sweep and rollback through real nginx + fcgiwrap, with the fake provider on 127.0.0.1:
leases kept by heartbeats and ended by sweep, fencing after a takeover, the failure policy
(rollback, diagnostic), the polling fallback, concurrent sweeps, manual rollback and cancel.

Time is moved with `draven sweep`'s DRAVEN_NOW (leases here are one minute), never waited for."""
import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BIN_DIR, ROOT, assert_problem, conforms, launch

sys.path.insert(0, str(ROOT / "infra"))
from demo_provider import FakeProvider  # noqa: E402

SECRETS = {"gh-token": "ghp_canaryHEARTBEAT01", "gh-hook": "canaryHBhook", "runner": "canaryRUNNERheartbeat",
           "gl-trigger-token": "glptt-canaryHB02", "gl-api-token": "glpat-canaryHB03", "bb-token": "bbat-canaryHB04"}
TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "rejected", "expired"}


@pytest.fixture(scope="module")
def world():
    fake = FakeProvider().start()
    config = (Path(__file__).parent / "draven.heartbeat.toml").read_text().replace("@FAKE@", fake.url)
    try:
        with launch(config, people=("alice", "bob", "carol"), secrets=SECRETS) as stack:
            yield stack, fake
            stack.assert_secrets_absent(SECRETS.values(), ("audit", "job_events", "outbox", "jobs", "releases"), store=True)
    finally:
        fake.stop()


# -- helpers ------------------------------------------------------------------------------------

def signed(stack, path, payload, secret=SECRETS["runner"], timestamp=None, content_type="application/json"):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    ts = str(timestamp if timestamp is not None else int(time.time()))
    sig = "v1=" + hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return stack.request("POST", path, body, headers={"X-Draven-Timestamp": ts, "X-Draven-Signature": sig}, content_type=content_type)


def heartbeat(stack, job, token, progress=None, **kwargs):
    payload = {"fencing_token": token}
    if progress is not None:
        payload["progress"] = progress
    return signed(stack, f"/api/v1/jobs/{job}/heartbeat", payload, **kwargs)


def finish(stack, job, result="succeeded", **extra):
    token = stack.rows("SELECT fencing_token FROM jobs WHERE id = ?", job)[0][0]
    r = signed(stack, "/hooks/runner", {"job_id": job, "fencing_token": token, "result": result, **extra})
    assert r.status == 200, r
    return r.json["state"]


def running(stack, env, ref, project="app", who="alice"):
    r = stack.deploy(who, project, env, ref)
    assert r.status == 201, r
    job = r.json["id"]
    assert stack.wait_for(job, {"running", "failed"}) == "running"
    return job


def deployed(stack, env, ref, release_id=None):
    """A deploy that ran and succeeded: a release of `env`."""
    job = running(stack, env, ref)
    assert finish(stack, job, release_id=release_id or ref) == "succeeded"
    return job


def github_event(stack, job, **run):
    """A signed GitHub workflow_run webhook about `job`'s run."""
    run_id = int(stack.rows("SELECT run_id FROM jobs WHERE id = ?", job)[0][0])
    body = json.dumps({"action": "in_progress", "workflow_run": {"id": run_id, "status": "in_progress", "conclusion": None, **run},
                       "repository": {"full_name": "acme/app"}}).encode()
    sig = "sha256=" + hmac.new(SECRETS["gh-hook"].encode(), body, hashlib.sha256).hexdigest()
    return stack.request("POST", "/hooks/github?project=app", body, headers={
        "X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": f"d-{job}-{time.time_ns()}", "X-Hub-Signature-256": sig})


def job_of(stack, job):
    return stack.request("GET", f"/api/v1/jobs/{job}", token=stack.tokens["alice"]).json


def lock(stack, env, project="app"):
    return stack.rows("""SELECT l.job_id, l.fencing_token, l.lease_until FROM locks l JOIN environments e ON e.id = l.environment_id
                         JOIN projects p ON p.id = e.project_id WHERE p.name = ? AND e.name = ?""", project, env)[0]


def children(stack, job):
    return stack.rows("SELECT id, kind, state, ref FROM jobs WHERE parent_job_id = ? ORDER BY id", job)


def sweep(stack, later, *args):
    return stack.sweep_once(later, *args)


def dispatched(fake, job):
    out = []
    for r in fake.received("/repos/acme/app/actions/workflows/"):
        body = json.loads(r["body"])
        if body["inputs"]["job_id"] == str(job):
            out.append(body)
    return out


def write(stack, sql, *args):
    """The tests' controllable clock for leases: move a lock's lease directly in the store."""
    with sqlite3.connect(stack.state_dir / "draven.db", timeout=10) as c:
        c.execute(sql, args)


def snapshot(stack):
    stack.wait_settled()  # the deliverer's own writes (a dispatch's run id, a notification's state) are done
    s = stack.snapshot()
    s["leases"] = stack.rows("SELECT environment_id, job_id, fencing_token, lease_until FROM locks ORDER BY 1")
    s["beats"] = stack.rows("SELECT id, heartbeat_at, progress FROM jobs ORDER BY id")
    return s


def settle(stack):
    """Ends every job a test left going, so the next test's sweeps see only its own jobs."""
    for _ in range(50):
        open_jobs = stack.rows("SELECT id, state FROM jobs WHERE state NOT IN ('succeeded','failed','timed_out','cancelled','rejected','expired')")
        if not open_jobs:
            return
        for job, state in open_jobs:
            if state in ("dispatching", "running"):
                if stack.wait_for(job, {"running"} | TERMINAL) == "running":
                    finish(stack, job)
            else:
                stack.request("POST", f"/api/v1/jobs/{job}/cancel", token=stack.tokens["alice"])
    raise AssertionError("jobs did not settle")


# -- heartbeats ---------------------------------------------------------------------------------

def test_heartbeats_extend_the_lease_and_record_progress(world):
    stack, fake = world
    job = running(stack, "beat", "refs/heads/main")
    token = job_of(stack, job)["fencing_token"]
    # The lease is about to run out; a heartbeat renews it to the policy's lease (1 minute) from now.
    write(stack, "UPDATE locks SET lease_until = strftime('%s','now') + 5 WHERE job_id = ?", job)
    before = int(time.time())
    r = heartbeat(stack, job, token, {"step": "migrate", "percent": 40, "message": "running migrations"})
    after = int(time.time())
    assert r.status == 200, r
    lease_until = lock(stack, "beat")[2]
    assert before + 60 <= lease_until <= after + 60
    assert r.json["job_id"] == job and r.json["state"] == "running"
    shown = job_of(stack, job)
    assert shown["progress"] == {"step": "migrate", "percent": 40, "message": "running migrations"}
    assert shown["heartbeat_at"]
    # A heartbeat without progress keeps the last progress; the lease never shrinks.
    write(stack, "UPDATE locks SET lease_until = lease_until + 1000 WHERE job_id = ?", job)
    assert heartbeat(stack, job, token).status == 200
    assert lock(stack, "beat")[2] == lease_until + 1000
    assert job_of(stack, job)["progress"]["step"] == "migrate"
    # A lease that ran out is not revived by a late heartbeat, even before sweep ends the job.
    write(stack, "UPDATE locks SET lease_until = strftime('%s','now') - 1 WHERE job_id = ?", job)
    before = snapshot(stack)
    assert "ran out" in assert_problem(heartbeat(stack, job, token), 409, "conflict")["detail"]
    assert snapshot(stack) == before
    write(stack, "UPDATE locks SET lease_until = ? WHERE job_id = ?", lease_until, job)
    # Within the lease, sweep leaves the job alone; a minute and a bit later, without a heartbeat, it ends it.
    sweep(stack, 30)
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", job) == [("running",)]
    out = sweep(stack, 120)
    assert f"timed out #{job}" in out.stdout
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", job) == [("timed_out",)]
    assert lock(stack, "beat")[0] is None
    # The job has ended: its runner is told to stop, and nothing changes.
    before = snapshot(stack)
    assert_problem(heartbeat(stack, job, token), 409, "conflict")
    assert snapshot(stack) == before
    settle(stack)


@pytest.mark.parametrize("name, change, status, ptype", [
    ("bad signature", {"secret": "not-the-runner-secret"}, 401, "bad-signature"),
    ("old timestamp", {"timestamp": int(time.time()) - 3600}, 401, "bad-signature"),
    ("unknown job", {"job": 999999}, 401, "bad-signature"),
    ("stale token", {"token": -1}, 409, "stale-fencing-token"),
    ("token as a string", {"payload": {"fencing_token": "1"}}, 422, "invalid-field"),
    ("unknown field", {"payload": {"fencing_token": 1, "state": "succeeded"}}, 422, "invalid-field"),
    ("bad percent", {"progress": {"percent": 140}}, 422, "invalid-field"),
    ("unknown progress field", {"progress": {"eta": 3}}, 422, "invalid-field"),
    ("not JSON", {"raw": b"fencing_token=1"}, 400, "malformed-request"),
    ("form body", {"content_type": "application/x-www-form-urlencoded"}, 415, "unsupported-media-type"),
    ("too large", {"raw": b"{" + b" " * 5000 + b"}"}, 413, "body-too-large"),
])
def test_refused_heartbeats_change_nothing(world, name, change, status, ptype):
    stack, fake = world
    job = running(stack, "beat", "refs/heads/main")
    token = job_of(stack, job)["fencing_token"]
    target = change.get("job", job)
    payload = change.get("raw") or change.get("payload") or {"fencing_token": token + 1 if change.get("token") else token,
                                                              **({"progress": change["progress"]} if "progress" in change else {})}
    kwargs = {k: change[k] for k in ("secret", "timestamp", "content_type") if k in change}
    before, refusals = snapshot(stack), stack.refusals()
    assert_problem(signed(stack, f"/api/v1/jobs/{target}/heartbeat", payload, **kwargs), status, ptype)
    assert snapshot(stack) == before, name
    assert stack.refusals() == refusals + 1  # audited as refused, nothing else
    assert heartbeat(stack, job, token).status == 200
    settle(stack)


def test_heartbeat_routes_only_post(world):
    stack, _ = world
    r = stack.request("GET", "/api/v1/jobs/1/heartbeat")
    assert_problem(r, 405, "method-not-allowed")


# -- leases and fencing -------------------------------------------------------------------------

def test_a_stale_token_is_refused_after_the_lease_ran_out_and_the_lock_moved_on(world):
    stack, fake = world
    first = running(stack, "takeover", "refs/heads/main")
    old = job_of(stack, first)["fencing_token"]
    r = stack.deploy("bob", "app", "takeover", "refs/heads/next")
    assert r.status == 201 and r.json["state"] == "queued"
    second = r.json["id"]
    # The first runner goes silent: sweep ends it and the queued job takes the lock with a new token.
    sweep(stack, 120)
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", first) == [("timed_out",)]
    assert stack.wait_for(second, {"running", "failed"}) == "running"
    new = job_of(stack, second)["fencing_token"]
    assert new > old and lock(stack, "takeover")[:2] == (second, new)
    # The silent runner comes back: it can neither extend nor end the lock its successor holds.
    before = snapshot(stack)
    assert_problem(heartbeat(stack, first, old), 409, "conflict")            # its job has ended
    assert_problem(heartbeat(stack, first, new), 409, "conflict")            # even with the new token
    assert_problem(heartbeat(stack, second, old), 409, "stale-fencing-token")  # an older token on the new job
    r = signed(stack, "/hooks/runner", {"job_id": first, "fencing_token": old, "result": "succeeded"})
    assert_problem(r, 409, "stale-fencing-token")
    r = signed(stack, "/hooks/runner", {"job_id": second, "fencing_token": old, "result": "failed"})
    assert_problem(r, 409, "stale-fencing-token")
    assert snapshot(stack) == before
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", second) == [("running",)]
    # The successor's own heartbeat is accepted.
    assert heartbeat(stack, second, new).status == 200
    settle(stack)


# -- failure policy -----------------------------------------------------------------------------

def test_no_heartbeat_times_out_frees_the_lock_and_rolls_back(world):
    stack, fake = world
    good = running(stack, "silent", "refs/tags/v1.0.0")
    # The provider says which commit the run builds: the job (and so its release) records it.
    assert github_event(stack, good, head_sha="c" * 40).json["state"] == "running"
    assert finish(stack, good, release_id="rel-1") == "succeeded"
    [release] = stack.request("GET", "/api/v1/releases?project=app&environment=silent", token=stack.tokens["alice"]).json["releases"]
    assert release["job_id"] == good and release["live"] and release["release_id"] == "rel-1" and release["sha"] == "c" * 40
    bad = running(stack, "silent", "refs/tags/v1.1.0")
    assert lock(stack, "silent")[0] == bad
    out = sweep(stack, 120)
    assert f"timed out #{bad}" in out.stdout
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", bad) == [("timed_out",)]
    [(actor, detail)] = stack.rows("SELECT actor, detail FROM job_events WHERE job_id = ? AND to_state = 'timed_out'", bad)
    assert actor == "draven sweep" and "lease" in json.loads(detail)["reason"]
    # The lock went to the rollback job, which the same sweep dispatched with Deployer's rollback task.
    [(rollback, kind, state, ref)] = children(stack, bad)
    assert (kind, ref) == ("rollback", "refs/tags/v1.0.0")
    assert lock(stack, "silent")[0] == rollback
    assert stack.wait_for(rollback, {"running", "failed"}) == "running"
    [body] = dispatched(fake, rollback)
    assert body["ref"] == "refs/tags/v1.0.0" and body["inputs"]["task"] == "rollback" and body["inputs"]["sha"] == "c" * 40
    assert body["inputs"]["fencing_token"] == str(lock(stack, "silent")[1])
    shown = conforms(job_of(stack, rollback), "Job")
    assert shown["kind"] == "rollback" and shown["parent_job_id"] == bad and shown["to_release"] == release["id"]
    # The rollback succeeds: it is the live release now.
    assert finish(stack, rollback, release_id="rel-1") == "succeeded"
    history = stack.request("GET", "/api/v1/releases?project=app&environment=silent", token=stack.tokens["alice"]).json
    assert history["live"]["job_id"] == rollback and history["live"]["kind"] == "rollback"
    assert [r["job_id"] for r in history["releases"]] == [rollback, good]
    assert not history["releases"][1]["live"] and history["releases"][1]["live_until"]
    settle(stack)


def test_failure_with_diagnostic_dispatches_deploy_info_and_attaches_its_log(world):
    stack, fake = world
    job = running(stack, "diag", "refs/heads/main")
    assert finish(stack, job, "failed") == "failed"
    [(diagnostic, kind, state, ref)] = children(stack, job)
    assert (kind, ref) == ("diagnostic", "refs/heads/main")
    assert stack.wait_for(diagnostic, {"running", "failed"}) == "running"
    [body] = dispatched(fake, diagnostic)
    assert body["inputs"]["task"] == "deploy:info" and body["inputs"]["env"] == "diag"
    assert finish(stack, diagnostic, log_url="https://ci.example/logs/diag-1") == "succeeded"
    assert job_of(stack, diagnostic)["log_url"] == "https://ci.example/logs/diag-1"
    [(detail,)] = stack.rows("SELECT detail FROM job_events WHERE job_id = ? AND event = 'diagnostic'", job)
    assert json.loads(detail) == {"diagnostic_job_id": diagnostic, "log_url": "https://ci.example/logs/diag-1", "result": "succeeded"}
    conforms(job_of(stack, job), "Job")
    # A diagnostic job is not a release; nothing more was created.
    assert stack.request("GET", "/api/v1/releases?project=app&environment=diag", token=stack.tokens["alice"]).json["releases"] == []
    assert children(stack, diagnostic) == []
    settle(stack)


def test_diagnostic_first_then_rollback_ahead_of_queued_deploys_and_a_failed_rollback_ends_there(world):
    stack, fake = world
    good = deployed(stack, "both", "refs/tags/v2.0.0")
    bad = running(stack, "both", "refs/tags/v2.1.0")
    r = stack.deploy("bob", "app", "both", "refs/tags/v2.2.0")
    assert r.status == 201 and r.json["state"] == "queued"
    waiting = r.json["id"]
    assert finish(stack, bad, "failed") == "failed"
    [(diagnostic, k1, _, _), (rollback, k2, s2, ref)] = children(stack, bad)
    assert (k1, k2, s2, ref) == ("diagnostic", "rollback", "queued", "refs/tags/v2.0.0")
    assert lock(stack, "both")[0] == diagnostic
    assert stack.wait_for(diagnostic, {"running", "failed"}) == "running"
    # The diagnostic ends: the rollback goes next, ahead of the deploy that was queued before it.
    assert finish(stack, diagnostic, log_url="https://ci.example/logs/d") == "succeeded"
    assert stack.wait_for(rollback, {"running", "failed"}) == "running"
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", waiting) == [("queued",)]
    # The rollback fails: no rollback of the rollback, no diagnostic; the queued deploy starts.
    assert finish(stack, rollback, "failed") == "failed"
    assert children(stack, rollback) == []
    assert stack.rows("SELECT count(*) FROM jobs WHERE kind != 'deploy' AND environment_id = (SELECT environment_id FROM jobs WHERE id = ?)",
                      bad) == [(2,)]
    assert stack.wait_for(waiting, {"running", "failed"}) == "running"
    live = stack.request("GET", "/api/v1/releases?project=app&environment=both", token=stack.tokens["alice"]).json["live"]
    assert live["job_id"] == good
    settle(stack)


def test_two_concurrent_sweeps_never_double_a_transition_or_a_dispatch(world):
    stack, fake = world
    deployed(stack, "twice", "refs/tags/v3.0.0")
    bad = running(stack, "twice", "refs/tags/v3.1.0")
    env = dict(os.environ, DRAVEN_NOW=str(int(time.time()) + 120))
    sweeps = [subprocess.Popen([str(BIN_DIR / "draven"), "sweep", "--once", "--state-dir", str(stack.state_dir)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=60) for p in sweeps]
    assert all(p.returncode == 0 for p in sweeps), outputs
    assert sum(f"timed out #{bad}" in out for out, _ in outputs) == 1, outputs
    assert stack.rows("SELECT event, to_state FROM job_events WHERE job_id = ? AND event IN ('transition', 'ignored') ORDER BY id", bad) == [
        ("transition", "dispatching"), ("transition", "running"), ("transition", "timed_out")]
    [(rollback, kind, _, _)] = children(stack, bad)
    assert kind == "rollback"
    assert stack.wait_for(rollback, {"running", "failed"}) == "running"
    assert len(dispatched(fake, rollback)) == 1
    assert stack.rows("SELECT state, attempts FROM outbox WHERE job_id = ? AND kind = 'dispatch'", rollback) == [("delivered", 1)]
    assert stack.rows("SELECT count(*) FROM audit WHERE subject = ? AND action = 'job.timed_out'", f"job/{bad}") == [(1,)]
    settle(stack)


# -- polling fallback ---------------------------------------------------------------------------

def test_polling_fallback_ends_jobs_whose_webhook_never_came(world):
    stack, fake = world
    gh = running(stack, "poll", "refs/heads/main", project="app")
    gl = running(stack, "poll", "refs/heads/main", project="gl")
    bb = running(stack, "poll", "refs/heads/main", project="bb")
    runs = {job: stack.rows("SELECT run_id FROM jobs WHERE id = ?", job)[0][0] for job in (gh, gl, bb)}
    bb_path = "/2.0/repositories/acme/app/pipelines/" + runs[bb].replace("{", "%7B").replace("}", "%7D")
    # Five minutes without a word from the provider: sweep asks; the runs are still going.
    sweep(stack, 400)
    for job in (gh, gl, bb):
        assert stack.rows("SELECT state FROM jobs WHERE id = ?", job) == [("running",)]
        assert stack.rows("SELECT state FROM outbox WHERE job_id = ? AND kind = 'poll'", job) == [("delivered",)]
    [req] = fake.received(f"/repos/acme/app/actions/runs/{runs[gh]}")
    assert req["method"] == "GET" and req["headers"]["Authorization"] == "Bearer " + SECRETS["gh-token"]
    [req] = fake.received(f"/api/v4/projects/42/pipelines/{runs[gl]}")
    assert req["method"] == "GET" and req["headers"]["PRIVATE-TOKEN"] == SECRETS["gl-api-token"]
    [req] = fake.received(bb_path)
    assert req["method"] == "GET" and req["headers"]["Authorization"] == "Bearer " + SECRETS["bb-token"]
    # Asked again within five minutes of the last answer: nothing is sent.
    sweep(stack, 500)
    assert len(fake.received(f"/repos/acme/app/actions/runs/{runs[gh]}")) == 1
    # The runs ended and their webhooks were lost: the next poll ends the jobs as the webhook would have.
    fake.script(f"/repos/acme/app/actions/runs/{runs[gh]}", {"status": 200, "body": {
        "id": int(runs[gh]), "status": "completed", "conclusion": "success", "html_url": "https://github.example/r"}})
    fake.script(f"/api/v4/projects/42/pipelines/{runs[gl]}", {"status": 200, "body": {"id": int(runs[gl]), "status": "failed"}})
    fake.script(bb_path, {"status": 200, "body": {"uuid": runs[bb], "state": {"name": "COMPLETED", "result": {"name": "SUCCESSFUL"}}}})
    sweep(stack, 800)
    assert [stack.rows("SELECT state FROM jobs WHERE id = ?", j)[0][0] for j in (gh, gl, bb)] == ["succeeded", "failed", "succeeded"]
    [(actor, detail)] = stack.rows("SELECT actor, detail FROM job_events WHERE job_id = ? AND to_state = 'succeeded'", gh)
    assert actor == "github poll" and json.loads(detail)["conclusion"] == "success"
    assert lock(stack, "poll")[0] is None and lock(stack, "poll", "gl")[0] is None
    # An ended job is not polled again.
    sweep(stack, 1200)
    assert len(fake.received(f"/repos/acme/app/actions/runs/{runs[gh]}")) == 2
    settle(stack)


# -- manual rollback ----------------------------------------------------------------------------

def test_manual_rollback_to_the_previous_or_a_named_release(world):
    stack, fake = world
    v1 = deployed(stack, "manual", "refs/tags/v1.0.0", release_id="r1")
    v2 = deployed(stack, "manual", "refs/tags/v2.0.0", release_id="r2")
    v3 = deployed(stack, "manual", "refs/tags/v3.0.0", release_id="r3")
    r = stack.request("POST", "/api/v1/rollbacks", {"project": "app", "environment": "manual", "reason": "v3 is slow"},
                      token=stack.tokens["alice"])
    assert r.status == 201 and r.headers["Location"] == f"/api/v1/jobs/{r.json['id']}", r
    back = conforms(r.json, "Job")
    assert (back["kind"], back["ref"], back["state"], back["reason"]) == ("rollback", "refs/tags/v2.0.0", "dispatching", "v3 is slow")
    assert stack.wait_for(back["id"], {"running", "failed"}) == "running"
    assert dispatched(fake, back["id"])[0]["inputs"]["task"] == "rollback"
    # Stopping a rollback takes a rollback grant (bob may only deploy).
    before = snapshot(stack)
    assert_problem(stack.request("POST", f"/api/v1/jobs/{back['id']}/cancel", token=stack.tokens["bob"]), 403, "forbidden")
    assert snapshot(stack) == before
    [(actor,)] = stack.rows("SELECT actor FROM audit WHERE action = 'job.create' AND detail LIKE ?", f'%"job_id":{back["id"]}%')
    assert actor == "alice"
    assert finish(stack, back["id"]) == "succeeded"
    # A named release of the history.
    r1 = stack.rows("SELECT id FROM releases WHERE job_id = ?", v1)[0][0]
    r = stack.request("POST", "/api/v1/rollbacks", {"project": "app", "environment": "manual", "to_release": "r1"},
                      token=stack.tokens["alice"])
    assert r.status == 201 and r.json["ref"] == "refs/tags/v1.0.0" and r.json["to_release"] == r1, r
    assert stack.wait_for(r.json["id"], {"running", "failed"}) == "running"
    assert finish(stack, r.json["id"]) == "succeeded"
    # Undo a given job: back to what was live before it.
    r = stack.request("POST", f"/api/v1/jobs/{v3}/rollback", token=stack.tokens["alice"])
    assert r.status == 201 and r.json["ref"] == "refs/tags/v2.0.0" and r.json["parent_job_id"] == v3, r
    assert stack.wait_for(r.json["id"], {"running", "failed"}) == "running"
    assert finish(stack, r.json["id"]) == "succeeded"
    assert v2
    settle(stack)


def test_refused_rollbacks_change_nothing(world):
    stack, fake = world
    deployed(stack, "busy", "refs/tags/v1.0.0")
    deployed(stack, "busy", "refs/tags/v1.1.0")
    holder = running(stack, "busy", "refs/tags/v1.2.0")
    cases = [
        ("no token", "/api/v1/rollbacks", {"project": "app", "environment": "busy"}, None, 401, "unauthenticated"),
        ("no rollback grant", "/api/v1/rollbacks", {"project": "app", "environment": "busy"}, "bob", 403, "forbidden"),
        ("no rollback grant, by job", f"/api/v1/jobs/{holder}/rollback", {}, "bob", 403, "forbidden"),
        ("unknown environment", "/api/v1/rollbacks", {"project": "app", "environment": "nope"}, "alice", 404, "not-found"),
        ("unknown job", "/api/v1/jobs/999999/rollback", {}, "alice", 404, "not-found"),
        ("missing environment", "/api/v1/rollbacks", {"project": "app"}, "alice", 422, "invalid-field"),
        ("unknown field", "/api/v1/rollbacks", {"project": "app", "environment": "busy", "ref": "v1"}, "alice", 422, "invalid-field"),
        ("unknown release", "/api/v1/rollbacks", {"project": "app", "environment": "busy", "to_release": "v9"}, "alice", 422, "invalid-field"),
        ("no history", "/api/v1/rollbacks", {"project": "app", "environment": "cancel"}, "alice", 409, "conflict"),
        ("busy, policy reject", "/api/v1/rollbacks", {"project": "app", "environment": "busy"}, "alice", 409, "environment-busy"),
        ("not JSON", "/api/v1/rollbacks", b"{", "alice", 400, "malformed-request"),
    ]
    for name, path, body, who, status, ptype in cases:
        before, sent = snapshot(stack), len(fake.requests)
        assert_problem(stack.request("POST", path, body, token=stack.tokens.get(who)), status, ptype)
        assert snapshot(stack) == before, name
        assert len(fake.requests) == sent, name
    settle(stack)


def test_a_rollback_needs_approvals_when_the_policy_says_so(world):
    stack, fake = world
    for ref in ("refs/tags/v1.0.0", "refs/tags/v1.1.0"):
        r = stack.deploy("alice", "app", "gated", ref)
        assert r.json["state"] == "awaiting_approval"
        assert stack.request("POST", f"/api/v1/jobs/{r.json['id']}/approvals", {"decision": "approve"}, token=stack.tokens["carol"]).status == 201
        assert stack.wait_for(r.json["id"], {"running", "failed"}) == "running"
        assert finish(stack, r.json["id"]) == "succeeded"
    r = stack.request("POST", "/api/v1/rollbacks", {"project": "app", "environment": "gated"}, token=stack.tokens["alice"])
    assert r.status == 201 and r.json["state"] == "awaiting_approval" and r.json["ref"] == "refs/tags/v1.0.0", r
    assert lock(stack, "gated")[0] is None  # no lock while people decide
    assert stack.request("POST", f"/api/v1/jobs/{r.json['id']}/approvals", {"decision": "approve"}, token=stack.tokens["carol"]).status == 201
    assert stack.wait_for(r.json["id"], {"running", "failed"}) == "running"
    settle(stack)


# -- cancel -------------------------------------------------------------------------------------

def test_cancel_a_queued_and_a_running_job_and_refusals(world):
    stack, fake = world
    first = running(stack, "cancel", "refs/heads/main")
    token = job_of(stack, first)["fencing_token"]
    run = stack.rows("SELECT run_id FROM jobs WHERE id = ?", first)[0][0]
    r = stack.deploy("alice", "app", "cancel", "refs/heads/next")
    assert r.json["state"] == "queued"
    queued = r.json["id"]
    for name, path, who, status, ptype in [
        ("no token", f"/api/v1/jobs/{first}/cancel", None, 401, "unauthenticated"),
        ("no deploy grant", f"/api/v1/jobs/{first}/cancel", "carol", 403, "forbidden"),
        ("unknown job", "/api/v1/jobs/999999/cancel", "alice", 404, "not-found"),
    ]:
        before, sent = snapshot(stack), len(fake.requests)
        assert_problem(stack.request("POST", path, token=stack.tokens.get(who)), status, ptype)
        assert snapshot(stack) == before and len(fake.requests) == sent, name
    # A queued job: cancelled, nothing to tell the provider.
    sent = len(fake.requests)
    r = stack.request("POST", f"/api/v1/jobs/{queued}/cancel", {"reason": "not today"}, token=stack.tokens["bob"])
    assert r.status == 200 and r.json["state"] == "cancelled", r
    assert stack.rows("SELECT count(*) FROM outbox WHERE job_id = ? AND kind = 'cancel'", queued) == [(0,)]
    # A running job: cancelled, the lock freed, and the provider asked to cancel the run.
    r = stack.request("POST", f"/api/v1/jobs/{first}/cancel", token=stack.tokens["alice"])
    assert r.status == 200 and r.json["state"] == "cancelled", r
    assert lock(stack, "cancel")[0] is None
    deadline = time.monotonic() + 10
    while not fake.received(f"/repos/acme/app/actions/runs/{run}/cancel"):
        assert time.monotonic() < deadline, "the provider was not asked to cancel the run"
        time.sleep(0.05)
    [req] = fake.received(f"/repos/acme/app/actions/runs/{run}/cancel")
    assert req["method"] == "POST" and req["headers"]["Authorization"] == "Bearer " + SECRETS["gh-token"]
    assert len(fake.requests) == sent + 1
    # The deliverer records the provider's answer after the provider has seen the call: wait for
    # the row to settle, or the snapshot below races its history note.
    deadline = time.monotonic() + 10
    while stack.rows("SELECT count(*) FROM outbox WHERE job_id = ? AND kind = 'cancel' "
                     "AND state IN ('pending', 'delivering')", first) != [(0,)]:
        assert time.monotonic() < deadline, "the cancel row did not settle"
        time.sleep(0.05)
    # Cancelling again is refused; the runner learns to stop from its next heartbeat.
    before = snapshot(stack)
    assert_problem(stack.request("POST", f"/api/v1/jobs/{first}/cancel", token=stack.tokens["alice"]), 409, "conflict")
    assert_problem(heartbeat(stack, first, token), 409, "conflict")
    assert snapshot(stack) == before
    settle(stack)


def test_the_functions_do_not_link_libcurl():
    for name in ["heartbeat", "rollback"]:
        out = subprocess.run(["ldd", str(BIN_DIR / name)], capture_output=True, text=True)
        assert "curl" not in out.stdout, out.stdout


# -- the shell runner and the CLI ---------------------------------------------------------------

RUNNER = ROOT / "infra" / "runner" / "draven-runner.sh"


def runner_env(stack, job, **extra):
    return dict(os.environ, DRAVEN_URL=stack.url, DRAVEN_RUNNER_SECRET=SECRETS["runner"], JOB_ID=str(job),
                DRAVEN_FENCING_TOKEN=str(job_of(stack, job)["fencing_token"]), ENV="beat", REF="refs/heads/main",
                DRAVEN_HEARTBEAT_EVERY="1", DRAVEN_LOG_URL="https://ci.example/logs/runner", **extra)


@pytest.mark.parametrize("exit_code, result", [(0, "succeeded"), (3, "failed")])
def test_the_shell_runner_sends_heartbeats_and_the_signed_result(world, tmp_path, exit_code, result):
    stack, _ = world
    job = running(stack, "beat", "refs/heads/main")
    progress = tmp_path / "progress"
    progress.write_text('build 20 compiling "assets"\n')
    entry = tmp_path / "run.sh"
    entry.write_text(f'#!/bin/sh\necho "rel-{exit_code}" > "$DRAVEN_RELEASE_FILE"\nexit {exit_code}\n')
    entry.chmod(0o755)
    done = subprocess.run([str(RUNNER), str(entry)], env=runner_env(stack, job, DRAVEN_PROGRESS_FILE=str(progress)),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == exit_code, done
    assert SECRETS["runner"] not in done.stdout + done.stderr
    shown = job_of(stack, job)
    assert shown["state"] == result and shown["heartbeat_at"]
    assert shown["progress"] == {"step": "build", "percent": 20, "message": 'compiling "assets"'}
    assert shown["log_url"] == "https://ci.example/logs/runner"
    assert stack.rows("SELECT release_id FROM jobs WHERE id = ?", job) == [(f"rel-{exit_code}",)]
    settle(stack)


def test_the_shell_runner_stops_the_deploy_when_the_job_is_cancelled(world, tmp_path):
    stack, _ = world
    job = running(stack, "beat", "refs/heads/main")
    entry = tmp_path / "run.sh"
    # The deploy is cancelled from outside while it runs; the runner's next heartbeat learns it.
    entry.write_text(f"""#!/bin/sh
curl -sS -o /dev/null -X POST -H "Authorization: Bearer $CANCEL_TOKEN" {stack.url}/api/v1/jobs/{job}/cancel
sleep 30
""")
    entry.chmod(0o755)
    done = subprocess.run([str(RUNNER), str(entry)], env=runner_env(stack, job, CANCEL_TOKEN=stack.tokens["alice"]),
                          capture_output=True, text=True, timeout=25)
    assert done.returncode == 75 and "stopping the deploy" in done.stderr, done
    assert job_of(stack, job)["state"] == "cancelled"
    # The runner reported nothing after the cancel.
    assert stack.rows("SELECT to_state FROM job_events WHERE job_id = ? AND event = 'transition' ORDER BY id DESC LIMIT 1", job) == [("cancelled",)]
    assert stack.rows("SELECT count(*) FROM job_events WHERE job_id = ? AND actor = 'runner'", job) == [(0,)]
    settle(stack)


def test_cli_rollback_and_cancel(world):
    stack, _ = world
    env = dict(os.environ, DRAVEN_TOKEN=stack.tokens["alice"], DRAVEN_API=stack.url)

    def cli(*args, token="alice"):
        return subprocess.run([str(BIN_DIR / "draven"), *args], env=dict(env, DRAVEN_TOKEN=stack.tokens[token]),
                              capture_output=True, text=True, timeout=60)

    job = running(stack, "cancel", "refs/heads/main")
    out = cli("cancel", str(job), "--reason", "wrong branch")
    assert out.returncode == 0 and out.stdout.strip() == f"job {job}: cancelled", out
    out = cli("cancel", str(job))
    assert out.returncode == 1 and "already ended" in out.stderr and "(409)" in out.stderr, out
    out = cli("rollback", "app", "manual", "--to", "r1", "--reason", "back to the start")
    assert out.returncode == 0 and "rollback of app/manual to refs/tags/v1.0.0 is dispatching" in out.stdout, out
    out = cli("rollback", "app", "manual", token="bob")
    assert out.returncode == 1 and "(403)" in out.stderr, out
    assert cli("rollback", "app").returncode != 0  # usage: PROJECT ENV, or --job
    assert stack.tokens["alice"] not in out.stdout + out.stderr
    settle(stack)
