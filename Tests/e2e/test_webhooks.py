"""webhook-receive through real nginx + fcgiwrap, driven by the real payloads in events/."""
import hashlib
import hmac
import json
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiosmtpd.controller import Controller

from conftest import ROOT, assert_problem, fixture, launch

sys.path.insert(0, str(ROOT / "infra"))
from demo_provider import FakeProvider  # noqa: E402

EVENTS = ROOT / "events"
SECRETS = {
    "gh-token": "ghp_canaryTOKEN0001", "gl-token": "glpat-canaryTOKEN0002", "bb-token": "bbat-canaryTOKEN0003",
    "gh-hook": "canaryGHhook-7d1f", "gh-hook-hello": "canaryGHhello-91a2", "gl-hook": "canaryGLhook-55e0",
    "bb-hook": "canaryBBhook-c3b4", "bbdc-hook": "canaryBBDChook-08f9", "runner-octo": "canaryRUNNER-6a6a",
}


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode(errors="replace")))
        return "250 OK"


@pytest.fixture(scope="module")
def world():
    fake = FakeProvider().start()
    inbox = Inbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        smtp_port = s.getsockname()[1]
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    secrets = dict(SECRETS, **{"slack-url": f"{fake.url}/slack/T0/B0/canarySLACKpath", "teams-url": f"{fake.url}/teams/wf?sig=canaryTEAMSsig"})
    config = (Path(__file__).parent / "draven.webhooks.toml").read_text().replace("@FAKE@", fake.url).replace("@SMTP_PORT@", str(smtp_port))
    try:
        with launch(config, people=("alice",), secrets=secrets) as stack:
            yield stack, fake, inbox
            stack.assert_secrets_absent(secrets.values(), ("audit", "job_events", "outbox", "deliveries"))
    finally:
        smtp.stop()
        fake.stop()


def github(stack, event, body, secret=SECRETS["gh-hook"], delivery=None, project=None, form=False, headers=None):
    sent = urlencode({"payload": body.decode()}).encode() if form else body
    h = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()), "X-GitHub-Hook-ID": "42",
         "User-Agent": "GitHub-Hookshot/abc",
         "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), sent, hashlib.sha256).hexdigest()}
    h.update(headers or {})
    path = "/hooks/github" + (f"?project={project}" if project else "")
    return stack.request("POST", path, sent, headers=h, content_type="application/x-www-form-urlencoded" if form else "application/json")


def gitlab(stack, event, body, token=SECRETS["gl-hook"], delivery=None):
    h = {"X-Gitlab-Event": event, "X-Gitlab-Token": token, "Idempotency-Key": delivery or str(uuid.uuid4()),
         "X-Gitlab-Event-UUID": str(uuid.uuid4()), "X-Gitlab-Instance": "https://gitlab.example"}
    return stack.request("POST", "/hooks/gitlab?project=gl", body, headers=h)


def bitbucket(stack, event, body, secret, project, id_header="X-Request-UUID"):
    h = {"X-Event-Key": event, id_header: str(uuid.uuid4()), "X-Hook-UUID": str(uuid.uuid4()), "X-Attempt-Number": "1",
         "X-Hub-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
    return stack.request("POST", f"/hooks/bitbucket?project={project}", body, headers=h)


def test_github_run_succeeds_frees_the_lock_starts_the_next_and_notifies(world):
    stack, fake, inbox = world
    job, run = stack.running_job("octo", "e0")
    queued = stack.deploy("alice", "octo", "e0", "refs/heads/next").json
    assert queued["state"] == "queued"
    r = github(stack, "workflow_run", fixture("github/workflow_run.requested.json", **{"workflow_run.id": int(run)}))
    assert r.status == 200 and r.json == {"status": "applied", "job_id": job, "state": "running"}
    r = github(stack, "workflow_run", fixture("github/workflow_run.completed.json", **{"workflow_run.id": int(run)}))
    assert r.status == 200 and r.json["state"] == "succeeded"
    # The lock passed to the queued job, which was dispatched after the answer.
    assert stack.wait_for(queued["id"], {"running"}) == "running"
    holder = stack.rows("SELECT l.job_id FROM locks l JOIN environments e ON e.id = l.environment_id "
                        "JOIN projects p ON p.id = e.project_id WHERE p.name = 'octo' AND e.name = 'e0'")
    assert holder == [(queued["id"],)]
    # Slack, Teams and email each got one message naming the job, env, ref, result, who asked and the link.
    deadline = time.monotonic() + 10
    while len([m for m in inbox.messages if f"#{job} " in m[2]]) < 1 or len(fake.received("/slack/")) < 1:
        assert time.monotonic() < deadline, (fake.received("/slack/"), inbox.messages)
        time.sleep(0.05)
    slack = [json.loads(r["body"]) for r in fake.received("/slack/T0/B0/canarySLACKpath") if f"#{job} " in r["body"].decode()]
    assert len(slack) == 1
    text = slack[0]["text"]
    for part in [f"deploy #{job}", "octo", "refs/heads/main", "e0", "succeeded", "asked by alice",
                 f"log: https://github.example/acme/app/actions/runs/{run}"]:  # the run page recorded at dispatch
        assert part in text, text
    teams = [json.loads(r["body"]) for r in fake.received("/teams/wf") if f"#{job} " in r["body"].decode()]
    assert teams[0]["attachments"][0]["content"]["body"][0]["text"] == text
    [mail] = [m for m in inbox.messages if f"#{job} " in m[2]]
    assert mail[0] == "draven@example.com" and mail[1] == ["ops@example.com", "lead@example.com"]
    assert f"Subject: [draven] deploy #{job} of octo refs/heads/main to e0 succeeded" in mail[2]


@pytest.mark.parametrize("env,conclusion,state", [
    ("e1", "success", "succeeded"), ("e2", "failure", "failed"), ("e3", "cancelled", "cancelled"),
    ("e4", "timed_out", "failed"), ("e5", "skipped", "cancelled"), ("e6", "neutral", "succeeded"),
    ("e7", "action_required", "running"),  # not an end: the run waits for approval in GitHub
])
def test_github_workflow_run_conclusions(world, env, conclusion, state):
    stack, _, _ = world
    job, run = stack.running_job("octo", env)
    r = github(stack, "workflow_run", fixture("github/workflow_run.completed.json", **{"workflow_run.id": int(run), "workflow_run.conclusion": conclusion}))
    assert r.status == 200 and r.json["state"] == state
    # A late in_progress after the end is recorded and changes nothing.
    r = github(stack, "workflow_run", fixture("github/workflow_run.requested.json", **{"workflow_run.id": int(run), "workflow_run.status": "in_progress"}))
    assert r.status == 200 and r.json["state"] == state
    kinds = [e for (e,) in stack.rows("SELECT event FROM job_events WHERE job_id = ? ORDER BY id", job)]
    assert kinds.count("provider") == 2


def test_github_form_encoded_delivery_and_workflow_jobs(world):
    stack, _, _ = world
    job, run = stack.running_job("octo", "e8")
    r = github(stack, "workflow_job", fixture("github/workflow_job.queued.json", **{"workflow_job.run_id": int(run), "repository.full_name": "octo-org/octo-repo"}), form=True)
    assert r.status == 200 and r.json["state"] == "running"
    r = github(stack, "workflow_job", fixture("github/workflow_job.completed.failure.json", **{"workflow_job.run_id": int(run)}), project="octo")
    assert r.status == 200 and r.json["state"] == "running"  # a job's result is recorded; the run decides
    detail = json.loads(stack.rows("SELECT detail FROM job_events WHERE job_id = ? ORDER BY id DESC LIMIT 1", job)[0][0])
    assert detail["conclusion"] == "failure" and detail["event"] == "workflow_job"


@pytest.mark.parametrize("path,event,status,body", [
    ("github/ping.json", "ping", 200, {"status": "ignored", "event": "ping"}),
    ("github/push.json", "push", 200, {"status": "ignored", "event": "push"}),
    ("github/check_suite.completed.json", "check_suite", 200, {"status": "ignored", "event": "check_suite"}),
    ("github/deployment_status.created.json", "deployment_status", 202, {"status": "stored", "detail": "no job is known for this run yet"}),
])
def test_github_events_that_are_not_about_a_known_job(world, path, event, status, body):
    stack, _, _ = world
    raw = (EVENTS / path).read_bytes()  # verbatim
    project = "hello" if b"Codertocat/Hello-World" in raw else "octo"
    secret = SECRETS["gh-hook-hello"] if project == "hello" else SECRETS["gh-hook"]
    delivery = str(uuid.uuid4())
    stack.wait_settled()
    before = stack.snapshot()
    r = github(stack, event, raw, secret=secret, project=project, delivery=delivery)
    assert r.status == status and r.json == body
    # Recorded, so that a repeat is a duplicate, and nothing else: one deliveries row, naming no job.
    after = stack.snapshot()
    added = [row for row in after["deliveries"] if row not in before["deliveries"]]
    assert after == dict(before, deliveries=sorted(before["deliveries"] + added, key=repr))
    [(_, source, delivery_id, name, job_id, _, payload, body_hash, run_key, reported_state)] = added
    assert (source, delivery_id, name, job_id) == (f"github:{project}", delivery, event, None)
    assert body_hash == hashlib.blake2b(raw, digest_size=32).hexdigest()
    assert payload == (raw.decode() if status == 202 else "")  # kept only for a run draven may learn of
    assert (run_key, reported_state) == ((None, None) if status == 200 else (None, "succeeded"))  # as the fixture says


@pytest.mark.parametrize("event,body", [("push", b"not json at all"), ("push", b"{\"ref\": 7}"), ("push", b""), ("ping", b"{")])
def test_events_draven_does_not_map_are_not_decoded(world, event, body):
    # Signed and recorded, then ignored: an unreadable push moves no job's sha and is no error.
    stack, _, _ = world
    r = github(stack, event, body, project="octo")
    assert r.status == 200 and r.json == {"status": "ignored", "event": event}, r


def test_repeats_answer_200_and_change_nothing(world):
    stack, fake, _ = world
    job, run = stack.running_job("octo", "e9")
    body = fixture("github/workflow_run.completed.json", **{"workflow_run.id": int(run)})
    delivery = str(uuid.uuid4())
    assert github(stack, "workflow_run", body, delivery=delivery).json["state"] == "succeeded"
    stack.wait_settled()
    before = stack.snapshot()
    again = github(stack, "workflow_run", body, delivery=delivery)
    assert again.status == 200 and again.json["status"] == "duplicate"
    other_id = github(stack, "workflow_run", body)  # same signed body under a new delivery id: still a repeat
    assert other_id.status == 200 and other_id.json["status"] == "duplicate"
    assert stack.snapshot() == before


def test_two_hundred_concurrent_copies_change_the_job_once_and_notify_once(world):
    stack, fake, inbox = world
    job, run = stack.running_job("octo", "e10")
    body = fixture("github/workflow_run.completed.json", **{"workflow_run.id": int(run), "workflow_run.conclusion": "failure"})
    delivery = str(uuid.uuid4())
    barrier = threading.Barrier(50)

    def send(i):
        if i < 50:
            barrier.wait()
        return github(stack, "workflow_run", body, delivery=delivery)

    with ThreadPoolExecutor(50) as pool:
        replies = list(pool.map(send, range(200)))
    assert sorted(r.status for r in replies) == [200] * 200, [r for r in replies if r.status != 200][:3]
    assert sum(r.json["status"] == "applied" for r in replies) == 1
    assert stack.rows("SELECT count(*) FROM job_events WHERE job_id = ? AND to_state = 'failed'", job) == [(1,)]
    assert stack.rows("SELECT count(*) FROM outbox WHERE job_id = ? AND kind = 'notify'", job) == [(3,)]
    deadline = time.monotonic() + 10
    while len([r for r in fake.received("/slack/") if f"#{job} " in r["body"].decode()]) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    assert len([r for r in fake.received("/slack/") if f"#{job} " in r["body"].decode()]) == 1


@pytest.mark.parametrize("env,status,state", [
    ("e0", "running", "running"), ("e1", "success", "succeeded"), ("e2", "failed", "failed"),
    ("e3", "canceled", "cancelled"), ("e4", "skipped", "cancelled"), ("e5", "pending", "running"),
])
def test_gitlab_pipeline_hook_states(world, env, status, state):
    stack, _, _ = world
    job, run = stack.running_job("gl", env)
    r = gitlab(stack, "Pipeline Hook", fixture("gitlab/pipeline_hook.json", **{"object_attributes.id": int(run), "object_attributes.status": status}))
    assert r.status == 200 and r.json["state"] == state


def test_gitlab_job_and_deployment_hooks_and_job_id_variable(world):
    stack, _, _ = world
    job, run = stack.running_job("gl", "e6")
    r = gitlab(stack, "Job Hook", fixture("gitlab/job_hook.json", pipeline_id=int(run), build_status="running"))
    assert r.status == 200 and r.json["job_id"] == job
    assert gitlab(stack, "Deployment Hook", (EVENTS / "gitlab/deployment_hook.json").read_bytes()).status == 202
    # A pipeline draven does not know by id, carrying JOB_ID as a variable, is matched by it.
    job2, _ = stack.running_job("gl", "e7")
    body = fixture("gitlab/pipeline_hook.json", **{"object_attributes.id": 990001, "object_attributes.status": "success",
                                                   "object_attributes.variables": [{"key": "JOB_ID", "value": str(job2)}]})
    r = gitlab(stack, "Pipeline Hook", body)
    assert r.status == 200 and r.json == {"status": "applied", "job_id": job2, "state": "succeeded"}


@pytest.mark.parametrize("env,state_in,state", [("e0", "INPROGRESS", "running"), ("e1", "SUCCESSFUL", "succeeded"),
                                                ("e2", "FAILED", "failed"), ("e3", "STOPPED", "cancelled")])
def test_bitbucket_commit_status_states(world, env, state_in, state):
    stack, _, _ = world
    job, run = stack.running_job("bb", env)
    body = fixture("bitbucket-cloud/repo_commit_status_updated.json", **{"commit_status.key": run, "commit_status.state": state_in})
    r = bitbucket(stack, "repo:commit_status_updated", body, SECRETS["bb-hook"], "bb")
    assert r.status == 200 and r.json["state"] == state


def test_bitbucket_data_center(world):
    stack, _, _ = world
    raw = (EVENTS / "bitbucket-dc/repo_refs_changed.json").read_bytes()
    r = bitbucket(stack, "repo:refs_changed", raw, SECRETS["bbdc-hook"], "bbdc", id_header="X-Request-Id")
    assert r.status == 200 and r.json["status"] == "ignored"
    stack.wait_settled()
    before = stack.snapshot()
    assert_problem(bitbucket(stack, "repo:refs_changed", raw, "wrong", "bbdc", id_header="X-Request-Id"), 401, "bad-signature")
    assert stack.snapshot() == before


def test_a_bitbucket_data_center_push_gives_a_waiting_job_its_new_sha(world):
    stack, _, _ = world
    r = stack.deploy("alice", "bbdc", "gated", "refs/heads/feature/wip")
    assert r.status == 201 and r.json["state"] == "awaiting_approval", r
    job = r.json["id"]
    # The real payload (test_bitbucket_data_center) deletes this branch; the same push moving it
    # instead: the job takes the new head, and approvals given for the old one stop counting.
    moved = json.loads((EVENTS / "bitbucket-dc/repo_refs_changed.json").read_text())
    moved["changes"][0].update(type="UPDATE", toHash="c" * 40)
    body = json.dumps(moved).encode()
    r = bitbucket(stack, "repo:refs_changed", body, SECRETS["bbdc-hook"], "bbdc", id_header="X-Request-Id")
    assert r.status == 200 and r.json == {"status": "applied", "event": "repo:refs_changed", "sha_changed": [job]}, r
    assert stack.rows("SELECT sha, state FROM jobs WHERE id = ?", job) == [("c" * 40, "awaiting_approval")]
    [(detail,)] = stack.rows("SELECT detail FROM audit WHERE subject = ? AND action = 'job.sha_changed'", f"job/{job}")
    assert json.loads(detail)["ref"] == "refs/heads/feature/wip"
    # Sent again (a retry under a new request id): a duplicate, nothing changes.
    stack.wait_settled()
    before = stack.snapshot()
    r = bitbucket(stack, "repo:refs_changed", body, SECRETS["bbdc-hook"], "bbdc", id_header="X-Request-Id")
    assert r.status == 200 and r.json["status"] == "duplicate" and stack.snapshot() == before


def test_a_bitbucket_cloud_push_gives_a_waiting_job_its_new_sha(world):
    stack, _, _ = world
    raw = json.loads((EVENTS / "bitbucket-cloud/repo_push.json").read_text())
    change = raw["push"]["changes"][0]
    branch, old, new = change["new"]["name"], change["old"]["target"]["hash"], change["new"]["target"]["hash"]
    r = stack.deploy("alice", "bb", "gated", f"refs/heads/{branch}", sha=old)
    assert r.status == 201 and r.json["state"] == "awaiting_approval", r
    job = r.json["id"]
    body = (EVENTS / "bitbucket-cloud/repo_push.json").read_bytes()  # the real payload, as sent
    stack.wait_settled()
    before = stack.snapshot()
    assert_problem(bitbucket(stack, "repo:push", body, "wrong", "bb"), 401, "bad-signature")
    assert stack.snapshot() == before
    r = bitbucket(stack, "repo:push", body, SECRETS["bb-hook"], "bb")
    assert r.status == 200 and r.json == {"status": "applied", "event": "repo:push", "sha_changed": [job]}, r
    assert stack.rows("SELECT sha, state FROM jobs WHERE id = ?", job) == [(new, "awaiting_approval")]
    [(detail,)] = stack.rows("SELECT detail FROM audit WHERE subject = ? AND action = 'job.sha_changed'", f"job/{job}")
    assert json.loads(detail) | {"delivery": None} == {"from": old, "to": new, "ref": f"refs/heads/{branch}",
                                                      "delivery": None}
    # Sent again (a retry under a new request id): a duplicate, nothing changes.
    stack.wait_settled()
    before = stack.snapshot()
    r = bitbucket(stack, "repo:push", body, SECRETS["bb-hook"], "bb")
    assert r.status == 200 and r.json["status"] == "duplicate" and stack.snapshot() == before


def deliveries(stack):
    return stack.rows("SELECT count(*) FROM deliveries")[0][0]


def test_refusals_store_nothing(world):
    stack, _, _ = world
    job, run = stack.running_job("octo", "e11")
    body = fixture("github/workflow_run.completed.json", **{"workflow_run.id": int(run)})
    good_sig = "sha256=" + hmac.new(SECRETS["gh-hook"].encode(), body, hashlib.sha256).hexdigest()
    cases = [
        ("bad signature", dict(headers={"X-Hub-Signature-256": "sha256=" + "0" * 64}), 401, "bad-signature"),
        ("wrong secret", dict(secret="not-the-secret"), 401, "bad-signature"),
        ("unknown project", dict(project="nope"), 401, "bad-signature"),
    ]
    for name, kwargs, status, ptype in cases:
        stack.wait_settled()
        before, n = stack.snapshot(), deliveries(stack)
        assert_problem(github(stack, "workflow_run", body, **kwargs), status, ptype)
        assert stack.snapshot() == before and deliveries(stack) == n, name
    # Missing header; truncated body under the full body's signature; malformed JSON correctly signed; too large.
    for name, raw, headers, status, ptype in [
        ("missing signature", body, {"X-GitHub-Event": "workflow_run"}, 401, "bad-signature"),
        ("truncated", body[:-40], {"X-GitHub-Event": "workflow_run", "X-Hub-Signature-256": good_sig}, 401, "bad-signature"),
        ("malformed", b'{"workflow_run": ', {"X-GitHub-Event": "workflow_run", "X-Hub-Signature-256": "sha256=" + hmac.new(SECRETS["gh-hook"].encode(), b'{"workflow_run": ', hashlib.sha256).hexdigest()}, 400, "malformed-request"),
        ("too large", b"{" + b" " * (26 << 20) + b"}", {"X-GitHub-Event": "workflow_run"}, 413, "body-too-large"),
    ]:
        stack.wait_settled()
        before, n = stack.snapshot(), deliveries(stack)
        assert_problem(stack.request("POST", "/hooks/github?project=octo", raw, headers=headers), status, ptype)
        assert stack.snapshot() == before and deliveries(stack) == n, name
    assert_problem(gitlab(stack, "Pipeline Hook", b"{}", token="wrong"), 401, "bad-signature")
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", job) == [("running",)]


def runner(stack, payload, secret=SECRETS["runner-octo"], timestamp=None):
    body = json.dumps(payload).encode()
    ts = str(timestamp if timestamp is not None else int(time.time()))
    sig = "v1=" + hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return stack.request("POST", "/hooks/runner", body, headers={"X-Draven-Timestamp": ts, "X-Draven-Signature": sig}), (body, ts, sig)


def test_runner_callback_ends_the_job_and_refusals(world):
    stack, fake, _ = world
    job, run = stack.running_job("octo", "e12")
    token = stack.rows("SELECT fencing_token FROM jobs WHERE id = ?", job)[0][0]
    base = {"job_id": job, "fencing_token": token, "result": "succeeded", "log_url": "https://ci.example/logs/77",
            "artifact_urls": ["https://ci.example/a.tgz"], "release_id": "rel-42"}
    for name, payload, kwargs, status, ptype in [
        ("stale token", dict(base, fencing_token=token - 1 if token > 1 else token + 100), {}, 409, "stale-fencing-token"),
        ("bad signature", base, {"secret": "nope"}, 401, "bad-signature"),
        ("old timestamp", base, {"timestamp": int(time.time()) - 301}, 401, "bad-signature"),
        ("unknown job", dict(base, job_id=999999), {}, 401, "bad-signature"),
        ("bad result", dict(base, result="maybe"), {}, 422, "invalid-field"),
    ]:
        stack.wait_settled()
        before = stack.snapshot()
        assert_problem(runner(stack, payload, **kwargs)[0], status, ptype)
        assert stack.snapshot() == before, name
    r, (body, ts, sig) = runner(stack, base)
    assert r.status == 200 and r.json == {"job_id": job, "state": "succeeded"}
    assert stack.rows("SELECT log_url, release_id FROM jobs WHERE id = ?", job) == [("https://ci.example/logs/77", "rel-42")]
    stack.wait_settled()
    before = stack.snapshot()
    replay = stack.request("POST", "/hooks/runner", body, headers={"X-Draven-Timestamp": ts, "X-Draven-Signature": sig})
    assert_problem(replay, 401, "bad-signature")
    assert stack.snapshot() == before
    # The ended job's token is stale now.
    assert_problem(runner(stack, dict(base, result="failed"))[0], 409, "stale-fencing-token")


def test_an_event_that_beats_the_dispatch_answer_is_applied_when_the_run_is_known(world):
    stack, fake, _ = world
    fake.script("/repos/octo-org/octo-repo/actions/workflows/", {"status": 200, "delay": 1.0,
                                                                 "body": {"workflow_run_id": 88001, "html_url": "https://gh.example/runs/88001"}})
    r = stack.deploy("alice", "octo", "e13", "refs/heads/main")
    job = r.json["id"]
    early = github(stack, "workflow_run", fixture("github/workflow_run.completed.json", **{"workflow_run.id": 88001}))
    assert early.status == 202
    assert stack.wait_for(job, {"succeeded", "failed"}) == "succeeded"


def test_sweep_retries_a_failed_notification(world):
    stack, fake, _ = world
    fake.script("/slack/", {"status": 503, "body": None})
    job, run = stack.running_job("octo", "e14")
    r = github(stack, "workflow_run", fixture("github/workflow_run.completed.json", **{"workflow_run.id": int(run), "workflow_run.conclusion": "failure"}))
    assert r.json["state"] == "failed"
    row = f"SELECT state, attempts, last_error FROM outbox WHERE job_id = {job} AND payload LIKE '%\"channel\":\"slack\"%'"
    deadline = time.monotonic() + 10
    while stack.rows(row)[0][2] is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    state, attempts, error = stack.rows(row)[0]
    assert (state, attempts) == ("pending", 1) and "503" in error and "canarySLACK" not in error
    stack.sweep_once()
    assert stack.rows(row)[0][:2] == ("delivered", 2)
    assert [r["answered"] for r in fake.received("/slack/") if f"#{job} " in r["body"].decode()] == [503, 200]
