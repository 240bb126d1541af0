"""Issue 15 through real nginx + fcgiwrap: provider bodies that repeat a key, provider states that
wait (not ends), misleading answers, replays that respell a signature, GitLab signed webhooks."""
import base64
import hashlib
import hmac
import json
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

import pytest
from standardwebhooks.webhooks import Webhook

from conftest import ROOT, assert_problem, fixture, launch

sys.path.insert(0, str(ROOT / "infra"))
from demo_provider import FakeProvider  # noqa: E402

EVENTS = ROOT / "events"
TEAMS_TOKEN = base64.b64encode(b"canaryTEAMS-hardening-0123456789").decode()
SIGNING = "whsec_" + base64.b64encode(b"canarySIGNINGkey-32-bytes-long!!").decode()
SECRETS = {
    "gh-token": "ghp_canaryHARDEN01", "gh-hook": "canaryGHhookHARDEN", "gl-token": "glpat-canaryHARDEN02",
    "gl-hook": "canaryGLhookHARDEN", "gl-signing": SIGNING, "bb-token": "bbat-canaryHARDEN03",
    "bb-hook": "canaryBBhookHARDEN",
    "runner": "canaryRUNNERharden", "slack-signing": "canarySLACKharden77", "teams-token": TEAMS_TOKEN,
}


@pytest.fixture(scope="module")
def world():
    fake = FakeProvider().start()
    config = (Path(__file__).parent / "draven.hooks.toml").read_text().replace("@FAKE@", fake.url)
    try:
        with launch(config, people=("alice", "bob", "carol"), secrets=SECRETS) as stack:
            yield stack, fake
            stack.assert_secrets_absent(SECRETS.values(), ("audit", "job_events", "outbox", "deliveries", "approvals"))
    finally:
        fake.stop()


def lock(stack, project, env):
    return stack.rows("""SELECT l.job_id, l.fencing_token, l.lease_until FROM locks l
                         JOIN environments e ON e.id = l.environment_id JOIN projects p ON p.id = e.project_id
                         WHERE p.name = ? AND e.name = ?""", project, env)


def state(stack, job):
    return stack.rows("SELECT state FROM jobs WHERE id = ?", job)[0][0]


def last_provider_detail(stack, job):
    rows = stack.rows("SELECT detail FROM job_events WHERE job_id = ? AND event = 'provider' ORDER BY id DESC LIMIT 1",
                      job)
    return json.loads(rows[0][0])


def pipeline(run, status):
    """GitLab's real Pipeline Hook example, about `run`, saying `status`."""
    changes = {"object_attributes.id": int(run), "object_attributes.status": status}
    return fixture("gitlab/pipeline_hook.json", **changes)


def github(stack, event, body, project="octo", content_type="application/json", secret=SECRETS["gh-hook"]):
    h = {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()),
         "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
    path = "/hooks/github" + (f"?project={project}" if project else "")
    return stack.request("POST", path, body, headers=h, content_type=content_type)


def gitlab(stack, event, body, project="gl", headers=None):
    h = {"X-Gitlab-Event": event, "X-Gitlab-Token": SECRETS["gl-hook"], "Idempotency-Key": str(uuid.uuid4()),
         "X-Gitlab-Event-UUID": str(uuid.uuid4()), **(headers or {})}
    return stack.request("POST", f"/hooks/gitlab?project={project}", body, headers=h)


def signed_gitlab(body, secret=SIGNING, msg_id=None, when=None):
    """The headers GitLab sends for a signed webhook, made by the reference implementation."""
    msg_id = msg_id or str(uuid.uuid4())
    when = when or datetime.now(tz=timezone.utc)
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=when, data=body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())), "webhook-signature": signature,
            "Idempotency-Key": msg_id, "X-Gitlab-Event": "Pipeline Hook"}


def post_gitlab(stack, body, headers, project="gls"):
    return stack.request("POST", f"/hooks/gitlab?project={project}", body, headers=headers)


def runner_headers(body, ts=None, upper=False):
    ts = str(ts if ts is not None else int(time.time()))
    mac = hmac.new(SECRETS["runner"].encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Draven-Timestamp": ts, "X-Draven-Signature": "v1=" + (mac.upper() if upper else mac)}


# -- 2. provider bodies that repeat a key -------------------------------------------------------

def repeat_key(body, before, key, value):
    """`body` (JSON text) with `"key": value` written (again) just before the first `before` member."""
    text = body.decode()
    at = text.index(before)
    return (text[:at] + f'"{key}": {json.dumps(value)},\n    ' + text[at:]).encode()


def test_a_real_gitlab_job_hook_that_repeats_a_key_is_read_last_duplicate_wins(world):
    stack, _ = world
    job, run = stack.running_job("gl", "w0")
    # GitLab's real Job Hook deliveries repeat repository.git_ssh_url: the real example payload, so repeated.
    body = fixture("gitlab/job_hook.json", pipeline_id=int(run), build_status="running")
    body = repeat_key(body, '"git_http_url"', "git_ssh_url", "git@192.168.64.1:gitlab-org/gitlab-test.git")
    assert body.decode().count('"git_ssh_url"') == 2
    assert json.loads(body)["repository"]["git_ssh_url"]  # still JSON, read the way GitLab's consumers read it
    r = gitlab(stack, "Job Hook", body)
    assert r.status == 200 and r.json == {"status": "applied", "job_id": job, "state": "running"}, r
    # The last duplicate wins, as GitLab's own consumers read it: a pipeline hook saying running, then success.
    body = repeat_key(pipeline(run, "running"), '"stages"', "status", "success")
    r = gitlab(stack, "Pipeline Hook", body)
    assert r.status == 200 and r.json == {"status": "applied", "job_id": job, "state": "succeeded"}, r


def test_draven_s_own_bodies_still_refuse_a_repeated_key(world):
    stack, _ = world
    job, _ = stack.running_job("octo", "w0")
    token = stack.rows("SELECT fencing_token FROM jobs WHERE id = ?", job)[0][0]
    alice = stack.tokens["alice"]
    runner = f'{{"job_id": {job}, "fencing_token": {token}, "result": "failed", "result": "succeeded"}}'.encode()
    beat = f'{{"fencing_token": {token}, "fencing_token": {token}}}'.encode()
    cases = [
        ("runner callback", "/hooks/runner", runner, runner_headers(runner), None),
        ("heartbeat", f"/api/v1/jobs/{job}/heartbeat", beat, runner_headers(beat), None),
        ("trigger", "/api/v1/deploys", b'{"project":"octo","environment":"w1","ref":"main","ref":"x"}', {}, alice),
        ("approve", f"/api/v1/jobs/{job}/approvals", b'{"decision":"reject","decision":"approve"}', {}, alice),
        ("rollback", "/api/v1/rollbacks", b'{"project":"octo","project":"octo","environment":"w0"}', {}, alice),
    ]
    for name, path, body, headers, bearer in cases:
        stack.wait_settled()
        before = stack.snapshot()
        reply = stack.request("POST", path, body, token=bearer, headers=headers)
        problem = assert_problem(reply, 400, "malformed-request")
        assert "duplicate key" in problem["detail"], (name, problem)
        assert stack.snapshot() == before, name
    assert state(stack, job) == "running"


# -- 4. waiting states are not ends -------------------------------------------------------------

def test_github_action_required_is_recorded_and_the_job_keeps_its_lock(world):
    stack, _ = world
    job, run = stack.running_job("octo", "w2")
    queued = stack.deploy("alice", "octo", "w2", "refs/heads/next").json
    assert queued["state"] == "queued"
    held = lock(stack, "octo", "w2")
    body = fixture("github/workflow_run.completed.json",
                   **{"workflow_run.id": int(run), "workflow_run.conclusion": "action_required"})
    r = github(stack, "workflow_run", body)
    assert r.status == 200 and r.json == {"status": "applied", "job_id": job, "state": "running"}, r
    assert lock(stack, "octo", "w2") == held  # same holder, token and lease
    assert state(stack, queued["id"]) == "queued"
    detail = last_provider_detail(stack, job)
    assert detail["conclusion"] == "action_required" and "approve" in detail["waiting"]
    assert stack.rows("SELECT count(*) FROM outbox WHERE job_id = ? AND kind = 'notify'", job) == [(0,)]
    # Someone approves the run in GitHub; it runs and succeeds: now the job ends and the queued one starts.
    body = fixture("github/workflow_run.completed.json", **{"workflow_run.id": int(run)})
    assert github(stack, "workflow_run", body).json["state"] == "succeeded"
    assert stack.wait_for(queued["id"], {"running"}) == "running"


@pytest.mark.parametrize("env,status", [("w1", "manual"), ("w2", "scheduled"), ("w3", "waiting_for_resource"),
                                        ("w4", "canceling")])
def test_gitlab_waiting_states_keep_the_job_running_with_its_lock(world, env, status):
    stack, _ = world
    job, run = stack.running_job("gl", env)
    held = lock(stack, "gl", env)
    r = gitlab(stack, "Pipeline Hook", pipeline(run, status))
    assert r.status == 200 and r.json == {"status": "applied", "job_id": job, "state": "running"}, r
    assert lock(stack, "gl", env) == held
    detail = last_provider_detail(stack, job)
    assert detail["status"] == status and f"({status})" in detail["waiting"]
    assert gitlab(stack, "Pipeline Hook", pipeline(run, "success")).json["state"] == "succeeded"
    assert lock(stack, "gl", env)[0][0] is None  # freed at the end


def test_polls_read_waiting_states_through_the_same_table(world):
    stack, fake = world
    gh, gh_run = stack.running_job("octo", "poll")
    gl, gl_run = stack.running_job("gl", "poll")
    bb, bb_run = stack.running_job("bb", "poll")
    held = {p: lock(stack, p, "poll") for p in ("octo", "gl", "bb")}
    bb_path = "/2.0/repositories/acme/app/pipelines/" + bb_run.replace("{", "%7B").replace("}", "%7D")
    fake.script(f"/repos/octo-org/octo-repo/actions/runs/{gh_run}", {"status": 200, "body": {
        "id": int(gh_run), "status": "completed", "conclusion": "action_required", "html_url": "https://gh.example/r"}})
    manual = {"id": int(gl_run), "status": "manual"}
    fake.script(f"/api/v4/projects/42/pipelines/{gl_run}", {"status": 200, "body": manual})
    paused = {"name": "IN_PROGRESS", "stage": {"name": "PAUSED"}}
    fake.script(bb_path, {"status": 200, "body": {"uuid": bb_run, "state": paused}})
    stack.sweep_once(400)  # five minutes without a word: sweep polls each run
    for project, job in (("octo", gh), ("gl", gl), ("bb", bb)):
        polls = stack.rows("SELECT state FROM outbox WHERE job_id = ? AND kind = 'poll'", job)
        assert polls == [("delivered",)], project
        assert state(stack, job) == "running", project
        assert lock(stack, project, "poll") == held[project], project
        assert "waiting" in last_provider_detail(stack, job), project
    assert last_provider_detail(stack, bb)["stage"] == "PAUSED"
    for project, job in (("octo", gh), ("gl", gl), ("bb", bb)):
        token = stack.rows("SELECT fencing_token FROM jobs WHERE id = ?", job)[0][0]
        body = json.dumps({"job_id": job, "fencing_token": token, "result": "succeeded"}).encode()
        assert stack.request("POST", "/hooks/runner", body, headers=runner_headers(body)).json["state"] == "succeeded"


# -- 14. answers that mislead -------------------------------------------------------------------

def test_a_github_delivery_that_is_not_json_is_415_even_without_a_project(world):
    stack, _ = world
    body = (EVENTS / "github/workflow_run.completed.json").read_bytes()
    for project, secret in ((None, SECRETS["gh-hook"]), ("octo", SECRETS["gh-hook"]), ("octo", "wrong")):
        stack.wait_settled()
        before, n = stack.snapshot(), stack.rows("SELECT count(*) FROM deliveries")
        reply = github(stack, "workflow_run", body, project=project, content_type="text/plain", secret=secret)
        problem = assert_problem(reply, 415, "unsupported-media-type")
        assert "text/plain" in problem["detail"]
        assert stack.snapshot() == before and stack.rows("SELECT count(*) FROM deliveries") == n


def teams_activity(user, text):
    return json.dumps({"type": "message", "id": str(time.time_ns()), "channelId": "msteams",
                       "from": {"id": f"29:{user}", "name": user, "aadObjectId": user}, "text": text}).encode()


def teams_mac(body):
    return base64.b64encode(hmac.new(base64.b64decode(TEAMS_TOKEN), body, hashlib.sha256).digest()).decode()


def test_teams_says_a_missing_signature_is_missing(world):
    stack, _ = world
    body = teams_activity("aad-alice", "status 1")
    stack.wait_settled()
    before = stack.snapshot()
    missing = assert_problem(stack.request("POST", "/chatops/teams", body), 401, "bad-signature")
    assert "missing" in missing["detail"] and "does not match" not in missing["detail"], missing
    def send(authorization):
        return stack.request("POST", "/chatops/teams", body, headers={"Authorization": authorization})
    malformed = assert_problem(send("Bearer abc"), 401, "bad-signature")
    assert "not an HMAC signature" in malformed["detail"], malformed
    wrong = assert_problem(send("HMAC " + teams_mac(b"other")), 401, "bad-signature")
    assert "does not match the body" in wrong["detail"]
    assert stack.snapshot() == before


# -- 12. a replay is a replay however its signature is spelled ------------------------------------

def test_a_runner_callback_replayed_with_a_respelled_signature_or_timestamp_is_refused(world):
    stack, _ = world
    job, _ = stack.running_job("octo", "w3")
    token = stack.rows("SELECT fencing_token FROM jobs WHERE id = ?", job)[0][0]
    body = json.dumps({"job_id": job, "fencing_token": token, "result": "succeeded"}).encode()
    ts = int(time.time())
    r = stack.request("POST", "/hooks/runner", body, headers=runner_headers(body, ts))
    assert r.status == 200 and r.json["state"] == "succeeded", r
    sig = runner_headers(body, ts)["X-Draven-Signature"]
    variants = {
        "the same": runner_headers(body, ts),
        "upper-case hex": runner_headers(body, ts, upper=True),
        "mixed-case hex": {"X-Draven-Timestamp": str(ts), "X-Draven-Signature": "v1=" + sig[3:].title()},
        "timestamp with +": {"X-Draven-Timestamp": f"+{ts}", "X-Draven-Signature": sig},
        "timestamp with a leading zero": {"X-Draven-Timestamp": f"0{ts}", "X-Draven-Signature": sig},
        "timestamp with spaces": {"X-Draven-Timestamp": f" {ts} ", "X-Draven-Signature": sig},
    }
    for name, headers in variants.items():
        stack.wait_settled()
        before = stack.snapshot()
        assert_problem(stack.request("POST", "/hooks/runner", body, headers=headers), 401, "bad-signature")
        assert stack.snapshot() == before, name
    # A heartbeat's timestamp is read as strictly.
    job2, _ = stack.running_job("octo", "w4")
    token2 = stack.rows("SELECT fencing_token FROM jobs WHERE id = ?", job2)[0][0]
    beat = json.dumps({"fencing_token": token2}).encode()
    ts = int(time.time())
    good = runner_headers(beat, ts)
    assert stack.request("POST", f"/api/v1/jobs/{job2}/heartbeat", beat, headers=good).status == 200
    bad = dict(good, **{"X-Draven-Timestamp": f"+{ts}"})
    assert_problem(stack.request("POST", f"/api/v1/jobs/{job2}/heartbeat", beat, headers=bad), 401, "bad-signature")


def slack_headers(body, ts=None, upper=False):
    ts = str(ts if ts is not None else int(time.time()))
    mac = hmac.new(SECRETS["slack-signing"].encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + (mac.upper() if upper else mac)}


def awaiting(stack):
    r = stack.deploy("carol", "octo", "chat", "refs/heads/main")
    assert r.status == 201 and r.json["state"] == "awaiting_approval", r
    return r.json["id"]


def test_slack_and_teams_votes_replayed_with_a_respelled_signature_are_refused(world):
    stack, _ = world
    job = awaiting(stack)
    form = "application/x-www-form-urlencoded"
    fields = {"team_id": "T0", "channel_id": "C0", "user_id": "UALICE", "command": "/draven", "text": f"approve {job}"}
    body = urlencode(fields).encode()
    ts = int(time.time())
    r = stack.request("POST", "/chatops/slack", body, headers=slack_headers(body, ts), content_type=form)
    assert r.status == 200 and "(1 of 2 approvals)" in r.json["text"], r
    sig = slack_headers(body, ts)["X-Slack-Signature"]
    for name, headers in {
        "the same": slack_headers(body, ts),
        "upper-case hex": slack_headers(body, ts, upper=True),
        "timestamp with +": {"X-Slack-Request-Timestamp": f"+{ts}", "X-Slack-Signature": sig},
        "timestamp with a leading zero": {"X-Slack-Request-Timestamp": f"0{ts}", "X-Slack-Signature": sig},
    }.items():
        stack.wait_settled()
        before = stack.snapshot()
        reply = stack.request("POST", "/chatops/slack", body, headers=headers, content_type=form)
        assert_problem(reply, 401, "bad-signature")
        assert stack.snapshot() == before, name
    # Strict even when fresh: a timestamp that is not plain digits is refused, not read as a number.
    status = urlencode(dict(fields, text=f"status {job}")).encode()
    for spelled in (f"+{ts}", f"0{ts}", f"{ts}.0"):
        headers = dict(slack_headers(status, ts), **{"X-Slack-Request-Timestamp": spelled})
        problem = assert_problem(stack.request("POST", "/chatops/slack", status, headers=headers, content_type=form),
                                 401, "bad-signature")
        assert "digits only" in problem["detail"], problem
    # Teams: the same signed body is a replay however its MAC is written.
    activity = teams_activity("aad-bob", f"<at>draven</at> approve {job}")
    mac = teams_mac(activity)
    r = stack.request("POST", "/chatops/teams", activity, headers={"Authorization": f"HMAC {mac}"})
    assert r.status == 200 and "approved" in r.json["text"], r
    assert stack.wait_for(job, {"running"}) == "running"  # its dispatch went out after the answer
    spellings = {"the same": f"HMAC {mac}", "unpadded": f"HMAC {mac.rstrip('=')}", "two spaces": f"HMAC  {mac}"}
    for name, header in spellings.items():
        stack.wait_settled()
        before = stack.snapshot()
        reply = stack.request("POST", "/chatops/teams", activity, headers={"Authorization": header})
        assert_problem(reply, 401, "bad-signature")
        assert stack.snapshot() == before, name
    assert stack.rows("SELECT count(*) FROM approvals WHERE job_id = ?", job) == [(2,)]


# -- 5. GitLab signed webhooks ------------------------------------------------------------------

def test_gitlab_signed_webhooks_verified_against_the_reference_implementation(world):
    stack, _ = world
    job, run = stack.running_job("gls", "w0")
    body = pipeline(run, "running")
    headers = signed_gitlab(body)
    Webhook(SIGNING).verify(body, headers)  # what we send is what the reference accepts
    r = post_gitlab(stack, body, headers)
    assert r.status == 200 and r.json == {"status": "applied", "job_id": job, "state": "running"}, r
    ids = stack.rows("SELECT delivery_id FROM deliveries WHERE job_id = ? ORDER BY id DESC LIMIT 1", job)
    assert ids == [(headers["webhook-id"],)]  # the signed id is the delivery id
    # The same delivery again (a GitLab retry, or a replay inside the window): a duplicate, nothing changes.
    stack.wait_settled()
    before = stack.snapshot()
    again = post_gitlab(stack, body, headers)
    assert again.status == 200 and again.json["status"] == "duplicate"
    assert stack.snapshot() == before

    done = pipeline(run, "success")
    altered = done.replace(b'"status": "success"', b'"status": "failed"')
    good = signed_gitlab(done)
    old = signed_gitlab(done, when=datetime.now(tz=timezone.utc) - timedelta(minutes=6))
    other_key = signed_gitlab(done, secret="whsec_" + base64.b64encode(b"another-32-byte-key-for-testing!").decode())
    refused = {
        "altered body": (altered, good),
        "no signature (token only)": (done, {"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": SECRETS["gl-hook"]}),
        "no webhook-id": (done, {k: v for k, v in good.items() if k != "webhook-id"}),
        "no timestamp": (done, {k: v for k, v in good.items() if k != "webhook-timestamp"}),
        "timestamp six minutes old": (done, old),
        "timestamp written +": (done, dict(good, **{"webhook-timestamp": "+" + good["webhook-timestamp"]})),
        "wrong key": (done, other_key),
        "another delivery's id": (done, dict(good, **{"webhook-id": str(uuid.uuid4())})),
        "v2 only": (done, dict(good, **{"webhook-signature": good["webhook-signature"].replace("v1,", "v2,")})),
    }
    for name, (sent, h) in refused.items():
        stack.wait_settled()
        before, n = stack.snapshot(), stack.rows("SELECT count(*) FROM deliveries")
        assert_problem(post_gitlab(stack, sent, h), 401, "bad-signature")
        assert stack.snapshot() == before and stack.rows("SELECT count(*) FROM deliveries") == n, name
    assert state(stack, job) == "running"
    # Several signatures (a key rotation): one that matches is enough.
    rotating = dict(good, **{"webhook-signature": other_key["webhook-signature"] + " " + good["webhook-signature"]})
    r = post_gitlab(stack, done, rotating)
    assert r.status == 200 and r.json["state"] == "succeeded", r


def test_a_gitlab_signature_list_is_split_at_spaces_as_the_reference_splits_it(world):
    # fuzz target `signatures` (Tests/Fuzz/regressions/signatures/space-combining-mark): the list was
    # split into Swift Characters, and a space followed by a combining mark (U+0301) is one: the
    # valid entry before it was not seen and the delivery refused, where the reference accepts it.
    stack, _ = world
    job, run = stack.running_job("gls", "w0")
    body = pipeline(run, "running")
    headers = signed_gitlab(body)
    listed = dict(headers, **{"webhook-signature": headers["webhook-signature"].encode() + " \u0301v2,x".encode()})
    Webhook(SIGNING).verify(body, dict(headers, **{"webhook-signature": listed["webhook-signature"].decode()}))
    r = post_gitlab(stack, body, listed)
    assert r.status == 200 and r.json == {"status": "applied", "job_id": job, "state": "running"}, r


def test_signing_secret_is_validated_by_apply(world):
    stack, _ = world
    bad = stack.state_dir / "bad.toml"
    bad.write_text('[projects.x.integration]\nprovider = "github"\nrepo = "a/b"\nmethod = "workflow_dispatch"\n'
                   'signing_secret = "s"\npipelines = { "*" = "d.yml" }\n')
    out = stack.draven("apply", "-f", str(bad), "--dry-run", check=False)
    assert out.returncode != 0 and "signing_secret: is for GitLab's signed webhooks" in out.stderr + out.stdout, out
    good = stack.state_dir / "good.toml"
    good.write_text('[projects.x.integration]\nprovider = "gitlab"\nrepo = "a/b"\nmethod = "pipeline"\n'
                    'token_secret = "t"\nsigning_secret = "s"\n[projects.x.environments.e]\nrefs = ["branch:*"]\n')
    out = stack.draven("apply", "-f", str(good), "--dry-run", check=False)
    assert out.returncode == 0, out
