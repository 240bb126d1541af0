"""approve through real nginx + fcgiwrap: votes from the API, the CLI, Slack, Teams and
Mattermost; approval requests posted to a fake Slack Web API; expiry through sweep."""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest

from conftest import BIN_DIR, ROOT, assert_problem, conforms, launch

sys.path.insert(0, str(ROOT / "infra"))
from demo_provider import FakeProvider  # noqa: E402

TEAMS_TOKEN = base64.b64encode(b"canaryTEAMStoken-0123456789abcdef").decode()
SECRETS = {
    "slack-signing": "canarySLACKsigning8f3e2a", "slack-bot": "xoxb-canary-BOT-5566",
    "teams-token": TEAMS_TOKEN, "mm-token": "canaryMMtoken77aa", "gh-token": "ghp_canaryAPPROVE01",
    "gh-hook": "canaryGHhookAPPROVE", "runner": "canaryRUNNERapprove",
}
PEOPLE = ("alice", "bob", "carol", "dave", "erin")
SHA1, SHA2 = "a" * 40, "b" * 40


@pytest.fixture(scope="module")
def world():
    fake = FakeProvider().start()
    secrets = dict(SECRETS, **{"teams-url": f"{fake.url}/teams/wf?sig=canaryTEAMSurl"})
    config = (Path(__file__).parent / "draven.approve.toml").read_text().replace("@FAKE@", fake.url)
    try:
        with launch(config, people=PEOPLE, secrets=secrets) as stack:
            stack.config = config
            yield stack, fake
            stack.assert_secrets_absent(secrets.values(), ("audit", "job_events", "outbox", "deliveries", "approvals", "settings"))
    finally:
        fake.stop()


def awaiting(stack, env, who="carol", ref="main", **extra):
    r = stack.deploy(who, "shop", env, ref, **extra)
    assert r.status == 201 and r.json["state"] == "awaiting_approval", r
    return r.json["id"]


def vote(stack, who, job, decision="approve", **extra):
    return stack.request("POST", f"/api/v1/jobs/{job}/approvals", {"decision": decision, **extra}, token=stack.tokens[who])


def lock_holder(stack, env):
    rows = stack.rows("SELECT l.job_id FROM locks l JOIN environments e ON e.id = l.environment_id WHERE e.name = ?", env)
    return rows[0][0] if rows else None


def wait_until(predicate, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def slack_messages(fake, method, job):
    out = []
    for r in fake.received(f"/slack-api/{method}"):
        body = json.loads(r["body"])
        if f"#{job} " in body["text"]:
            out.append((r, body))
    return out


# -- the API -----------------------------------------------------------------------------------

def test_two_of_n_approvals_by_different_people_dispatch_the_job(world):
    stack, fake = world
    job = awaiting(stack, "prod", ref="v1.0.0")
    assert lock_holder(stack, "prod") is None  # no lock while people decide
    first = vote(stack, "alice", job, comment="looks good")
    assert first.status == 201, first
    assert (first.json["approvals"], first.json["required"], first.json["counted"]) == (1, 2, True)
    assert first.json["job"]["state"] == "awaiting_approval" and lock_holder(stack, "prod") is None
    # The same person twice counts once (even though alice is in leads and holds two grants).
    again = vote(stack, "alice", job)
    assert again.status == 200 and again.json["counted"] is False and again.json["approvals"] == 1
    assert stack.rows("SELECT count(*) FROM approvals WHERE job_id = ?", job) == [(1,)]
    second = vote(stack, "bob", job)
    assert second.status == 201 and second.json["approvals"] == 2
    assert second.json["job"]["state"] == "dispatching"
    conforms(second.json["job"], "Job")
    assert lock_holder(stack, "prod") == job
    # Dispatched as a trigger would: after the answer, the fake CI got the workflow dispatch.
    assert stack.wait_for(job, {"running", "failed"}) == "running"
    [req] = [r for r in fake.received("/repos/acme/shop/actions/workflows/deploy.yml/dispatches")
             if json.loads(r["body"])["inputs"]["job_id"] == str(job)]
    assert json.loads(req["body"])["ref"] == "refs/tags/v1.0.0"
    # The history and the audit trail name who voted, from where, on which sha.
    listing = stack.request("GET", f"/api/v1/jobs/{job}/approvals", token=stack.tokens["carol"])
    assert listing.status == 200
    conforms(listing.json, "Approvals")
    assert [(v["person"], v["decision"], v["via"], v["current"]) for v in listing.json["votes"]] == [
        ("alice", "approve", "api", True), ("bob", "approve", "api", True)]
    audits = stack.rows("SELECT actor, action, detail FROM audit WHERE subject = ? AND action LIKE 'approval.%' ORDER BY id", f"job/{job}")
    assert [(a, b) for a, b, _ in audits] == [("alice", "approval.approve"), ("alice", "approval.repeat"), ("bob", "approval.approve")]
    detail = json.loads(audits[0][2])
    assert detail["via"] == "api" and detail["remote"] == "127.0.0.1" and detail["sha"] is None and detail["comment"] == "looks good"


def test_the_approval_request_reaches_slack_and_is_updated_when_decided(world):
    stack, fake = world
    job = awaiting(stack, "refusals", reason="hotfix")
    wait_until(lambda: slack_messages(fake, "chat.postMessage", job), "no approval request posted")
    [(req, body)] = slack_messages(fake, "chat.postMessage", job)
    assert req["headers"]["Authorization"] == "Bearer " + SECRETS["slack-bot"]
    assert body["channel"] == "C0DEPLOYS"
    assert "needs 2 approvals from leads" in body["text"] and "asked by carol: hotfix" in body["text"]
    actions = [b for b in body["blocks"] if b["type"] == "actions"][0]["elements"]
    assert [(a["action_id"], a["value"]) for a in actions] == [("draven_approve", str(job)), ("draven_reject", str(job))]
    # Teams gets the request as text, with how to answer.
    wait_until(lambda: [r for r in fake.received("/teams/wf") if f"#{job} " in r["body"].decode()], "no Teams request")
    [teams] = [json.loads(r["body"]) for r in fake.received("/teams/wf") if f"#{job} " in r["body"].decode()]
    assert f"@draven approve {job}" in teams["attachments"][0]["content"]["body"][0]["text"]
    posted_ts = stack.rows("SELECT channel, ts FROM approval_messages WHERE job_id = ?", job)
    assert posted_ts and posted_ts[0][0] == "C0DEPLOYS"
    # A rejection ends the job; the Slack message is updated in place, without buttons.
    r = vote(stack, "erin", job, "reject", comment="not today")
    assert r.status == 201 and r.json["job"]["state"] == "rejected"
    wait_until(lambda: slack_messages(fake, "chat.update", job), "the message was not updated")
    [(_, update)] = slack_messages(fake, "chat.update", job)
    assert (update["channel"], update["ts"]) == posted_ts[0]
    assert "REJECTED by erin: not today" in update["text"]
    assert all(b["type"] != "actions" for b in update["blocks"])


def test_reject_ends_the_job_and_later_votes_are_refused(world):
    stack, _ = world
    job = awaiting(stack, "refusals")
    assert vote(stack, "alice", job).status == 201
    r = vote(stack, "bob", job, "reject")
    assert r.status == 201 and r.json["job"]["state"] == "rejected"
    assert lock_holder(stack, "refusals") is None
    stack.wait_settled()  # the deliverer's own writes are done
    before = stack.snapshot()
    assert_problem(vote(stack, "erin", job), 409, "conflict")
    assert stack.snapshot() == before
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", job) == [("rejected",)]


@pytest.mark.parametrize("who,setup,status,kind,rule", [
    ("carol", None, 403, "forbidden", None),                    # no approve grant
    ("dave", None, 403, "policy-denied", "approver_groups"),    # a grant, but in no approver group
    ("alice", "self", 403, "policy-denied", "self_approval"),   # her own deploy
])
def test_refused_votes_change_nothing(world, who, setup, status, kind, rule):
    stack, fake = world
    job = awaiting(stack, "refusals", who="alice" if setup == "self" else "carol")
    wait_until(lambda: slack_messages(fake, "chat.postMessage", job), "no approval request posted")
    # Every approval-request post (Slack and Teams) has gone out before the calls are counted.
    wait_until(lambda: stack.rows("SELECT count(*) FROM outbox WHERE job_id = ? AND state IN ('pending', 'delivering')", job) == [(0,)],
               "approval requests still being delivered")
    before, refusals, outbound = stack.snapshot(), stack.refusals(), len(fake.requests)
    problem = assert_problem(vote(stack, who, job), status, kind)
    if rule:
        assert problem["rule"] == rule
    assert stack.snapshot() == before
    assert stack.refusals() == refusals + 1
    assert stack.rows("SELECT count(*) FROM approvals WHERE job_id = ?", job) == [(0,)]
    time.sleep(0.2)
    assert len(fake.requests) == outbound  # no outbound call either


def test_concurrent_votes_dispatch_the_job_once(world):
    stack, fake = world
    job = awaiting(stack, "race")
    voters = ["alice", "bob", "erin", "alice", "bob", "erin"] * 3
    with ThreadPoolExecutor(len(voters)) as pool:
        replies = list(pool.map(lambda who: vote(stack, who, job), voters))
    assert {r.status for r in replies} <= {200, 201, 409}, replies
    assert sum(r.status == 201 for r in replies) == 2  # the first two people; the rest repeat or find it decided
    assert stack.rows("SELECT count(*) FROM outbox WHERE kind = 'dispatch' AND job_id = ?", job) == [(1,)]
    assert stack.wait_for(job, {"running"}) == "running"
    assert len([r for r in fake.received("/repos/acme/shop/actions/workflows/deploy.yml/dispatches")
                if json.loads(r["body"])["inputs"]["job_id"] == str(job)]) == 1


def test_self_approval_when_the_policy_allows_it(world):
    stack, _ = world
    job = awaiting(stack, "selfok", who="alice", ref="v2.0.0")
    r = vote(stack, "alice", job)
    assert r.status == 201 and r.json["job"]["state"] == "dispatching"
    assert stack.wait_for(job, {"running"}) == "running"


@pytest.mark.parametrize("kwargs,status,kind", [
    ({"body": {"decision": "maybe"}}, 422, "invalid-field"),
    ({"body": {"decision": "approve", "extra": 1}}, 422, "invalid-field"),
    ({"body": {"decision": "approve", "comment": 5}}, 422, "invalid-field"),
    ({"body": b"{not json", "content_type": "application/json"}, 400, "malformed-request"),
    ({"body": b"decision=approve", "content_type": "application/x-www-form-urlencoded"}, 415, "unsupported-media-type"),
    ({"body": {"decision": "approve"}, "token": None}, 401, "unauthenticated"),
    ({"body": {"decision": "approve"}, "job": 999999}, 404, "not-found"),
])
def test_malformed_and_unauthenticated_votes(world, kwargs, status, kind):
    stack, _ = world
    job = kwargs.pop("job", None) or awaiting(stack, "refusals")
    token = kwargs.pop("token", stack.tokens["alice"])
    stack.wait_settled()  # the deliverer's own writes are done
    before = stack.snapshot()
    r = stack.request("POST", f"/api/v1/jobs/{job}/approvals", token=token, **kwargs)
    assert_problem(r, status, kind)
    assert stack.snapshot() == before


def test_an_approved_job_queues_when_busy_and_starts_when_the_lock_frees(world):
    stack, fake = world
    first = awaiting(stack, "busy")
    assert vote(stack, "alice", first).json["job"]["state"] == "dispatching"
    assert stack.wait_for(first, {"running"}) == "running"
    second = awaiting(stack, "busy")
    r = vote(stack, "bob", second)
    assert r.status == 201 and r.json["job"]["state"] == "queued"
    assert lock_holder(stack, "busy") == first
    # The first job ends (its runner reports): the lock passes to the approved, queued job.
    token = stack.rows("SELECT fencing_token FROM jobs WHERE id = ?", first)[0][0]
    body = json.dumps({"job_id": first, "fencing_token": token, "result": "succeeded"}).encode()
    ts = str(int(time.time()))
    sig = "v1=" + hmac.new(SECRETS["runner"].encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    done = stack.request("POST", "/hooks/runner", body, headers={"X-Draven-Timestamp": ts, "X-Draven-Signature": sig})
    assert done.status == 200 and done.json["state"] == "succeeded", done
    assert stack.wait_for(second, {"running"}) == "running"
    assert lock_holder(stack, "busy") == second


def test_approvals_given_before_the_sha_changed_no_longer_count(world):
    stack, _ = world
    job = awaiting(stack, "moving", ref="refs/heads/feature", sha=SHA1)
    assert vote(stack, "alice", job).json["approvals"] == 1
    # The branch moves: a signed GitHub push for the job's ref.
    push = json.loads((ROOT / "events" / "github" / "push.json").read_text())
    push.update(ref="refs/heads/feature", before=SHA1, after=SHA2, created=False, deleted=False)
    push["repository"]["full_name"] = "acme/shop"
    raw = json.dumps(push).encode()
    headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "push-moving-1",
               "X-Hub-Signature-256": "sha256=" + hmac.new(SECRETS["gh-hook"].encode(), raw, hashlib.sha256).hexdigest()}
    r = stack.request("POST", "/hooks/github?project=shop", raw, headers=headers)
    assert r.status == 200 and r.json == {"status": "applied", "event": "push", "sha_changed": [job]}, r
    assert stack.rows("SELECT sha FROM jobs WHERE id = ?", job) == [(SHA2,)]
    # bob's approval is the only one for the new commit: 1 of 2, the job keeps waiting.
    r = vote(stack, "bob", job)
    assert r.status == 201 and r.json["approvals"] == 1 and r.json["job"]["state"] == "awaiting_approval"
    listing = conforms(stack.request("GET", f"/api/v1/jobs/{job}/approvals", token=stack.tokens["alice"]).json, "Approvals")
    assert [(v["person"], v["sha"], v["current"]) for v in listing["votes"]] == [("alice", SHA1, False), ("bob", SHA2, True)]
    # alice approves the new commit: that counts.
    r = vote(stack, "alice", job)
    assert r.status == 201 and r.json["approvals"] == 2 and r.json["job"]["state"] == "dispatching"
    assert stack.wait_for(job, {"running"}) == "running"


def test_approvals_given_under_an_older_policy_no_longer_count(world):
    stack, _ = world
    job = awaiting(stack, "policy")
    assert vote(stack, "alice", job).json["approvals"] == 1
    changed = stack.state_dir / "changed.toml"
    changed.write_text(stack.config.replace('[projects.shop.environments.policy]\nrefs = ["branch:*"]\napprovals = 2',
                                            '[projects.shop.environments.policy]\nrefs = ["branch:*"]\napprovals = 2\nlease = "20m"'))
    out = stack.draven("apply", "-f", str(changed))
    assert "shop/policy" in out.stdout + out.stderr
    r = vote(stack, "bob", job)
    assert r.status == 201 and r.json["approvals"] == 1 and r.json["job"]["state"] == "awaiting_approval"
    assert vote(stack, "alice", job).json["job"]["state"] == "dispatching"
    assert stack.wait_for(job, {"running"}) == "running"
    stack.draven("apply", "-f", str(Path(stack.state_dir) / "draven.toml"))


def test_expiry_through_sweep(world):
    stack, fake = world
    job = awaiting(stack, "short")
    assert vote(stack, "alice", job).status == 201
    wait_until(lambda: stack.rows("SELECT count(*) FROM approval_messages WHERE job_id = ?", job)[0][0] == 1, "request not posted")
    out = stack.sweep_once(later=120)
    assert f"expired #{job}" in out.stdout
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", job) == [("expired",)]
    [(actor, detail)] = stack.rows("SELECT actor, detail FROM audit WHERE subject = ? AND action = 'job.expired'", f"job/{job}")
    assert actor == "draven sweep" and json.loads(detail)["approval_ttl_s"] == 60
    [(_, update)] = slack_messages(fake, "chat.update", job)  # sweep delivered the update
    assert "EXPIRED" in update["text"]
    assert_problem(vote(stack, "bob", job), 409, "conflict")
    # A second sweep changes nothing.
    stack.wait_settled()  # the deliverer's own writes are done
    before = stack.snapshot()
    stack.sweep_once(later=120)
    assert stack.snapshot() == before


def test_cli_approve_and_reject(world):
    stack, _ = world
    job = awaiting(stack, "cli")
    env = dict(os.environ, DRAVEN_TOKEN=stack.tokens["dave"], DRAVEN_API=stack.url)
    refused = subprocess.run([str(BIN_DIR / "draven"), "approve", str(job)], env=env, capture_output=True, text=True)
    assert refused.returncode == 1 and "dave is in none of them" in refused.stderr and "(403)" in refused.stderr
    env["DRAVEN_TOKEN"] = stack.tokens["bob"]
    ok = subprocess.run([str(BIN_DIR / "draven"), "approve", str(job), "--comment", "ship"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"job {job}: approved (1 of 1 approvals); the job is dispatching"
    assert stack.wait_for(job, {"running"}) == "running"
    assert stack.tokens["bob"] not in ok.stdout + ok.stderr
    second = awaiting(stack, "cli")
    token_file = stack.state_dir / "erin.token"
    token_file.write_text(stack.tokens["erin"] + "\n")
    env.pop("DRAVEN_TOKEN")
    r = subprocess.run([str(BIN_DIR / "draven"), "reject", str(second), "--api", stack.url, "--token-file", str(token_file)],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "rejected" in r.stdout, r.stderr
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", second) == [("rejected",)]


# -- Slack -------------------------------------------------------------------------------------

def slack(stack, fields=None, payload=None, secret=SECRETS["slack-signing"], ts=None, raw=None):
    body = raw or urlencode(payload and {"payload": json.dumps(payload)} or fields).encode()
    ts = str(ts if ts is not None else int(time.time()))
    sig = "v0=" + hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}
    return stack.request("POST", "/chatops/slack", body, headers=headers, content_type="application/x-www-form-urlencoded"), body, headers


def slash(user, text):
    return {"token": "legacy-ignored", "team_id": "T0", "team_domain": "acme", "channel_id": "C0DEPLOYS", "channel_name": "deploys",
            "user_id": user, "user_name": user.lower(), "command": "/draven", "text": text,
            "response_url": "https://hooks.slack.com/commands/T0/1/x", "trigger_id": "13345224609.738474920.8088930838d88f008e0"}


def button(user, action, job):
    return {"type": "block_actions", "user": {"id": user, "username": user.lower(), "team_id": "T0"}, "api_app_id": "A0",
            "container": {"type": "message", "channel_id": "C0DEPLOYS"}, "channel": {"id": "C0DEPLOYS", "name": "deploys"},
            "response_url": "https://hooks.slack.com/actions/T0/1/x", "trigger_id": "1.2.3",
            "actions": [{"type": "button", "action_id": action, "block_id": f"draven_job_{job}", "value": str(job),
                         "action_ts": str(time.time())}]}


def ephemeral(fake, user):
    return [json.loads(r["body"]) for r in fake.received("/slack-api/chat.postEphemeral") if json.loads(r["body"])["user"] == user]


def test_slack_slash_command_and_button_approve_with_the_real_signature(world):
    stack, fake = world
    job = awaiting(stack, "chat")
    r, _, _ = slack(stack, slash("UALICE", f"approve {job} fine by me"))
    assert r.status == 200 and r.json["response_type"] == "in_channel", r
    assert r.json["text"] == f"draven: alice approved deploy #{job} of shop refs/heads/main to chat (1 of 2 approvals)"
    status, _, _ = slack(stack, slash("UBOB", f"status {job}"))
    assert status.json == {"response_type": "ephemeral",
                           "text": f"draven: deploy #{job} of shop refs/heads/main to chat is awaiting_approval with 1 of 2 approvals"}
    r, _, _ = slack(stack, payload=button("UBOB", "draven_approve", job))
    assert r.status == 200, r
    # Slack shows nothing of a button's answer: the clicker gets an ephemeral message.
    wait_until(lambda: ephemeral(fake, "UBOB"), "no ephemeral reply to the button")
    [reply] = ephemeral(fake, "UBOB")
    assert reply["channel"] == "C0DEPLOYS" and f"bob approved deploy #{job}" in reply["text"] and "approved: deploying" in reply["text"]
    assert stack.wait_for(job, {"running"}) == "running"
    votes = stack.rows("SELECT p.handle, a.via, a.chat_user, a.comment FROM approvals a JOIN people p ON p.id = a.person_id WHERE job_id = ? ORDER BY a.id", job)
    assert votes == [("alice", "slack", "UALICE", "fine by me"), ("bob", "slack", "UBOB", "")]


@pytest.mark.parametrize("case", ["wrong secret", "old timestamp", "future timestamp", "no signature", "tampered body"])
def test_slack_requests_that_do_not_verify_are_refused(world, case):
    stack, _ = world
    job = awaiting(stack, "refusals")
    stack.wait_settled()  # the deliverer's own writes are done
    before = stack.snapshot()
    fields = slash("UALICE", f"approve {job}")
    if case == "wrong secret":
        r, _, _ = slack(stack, fields, secret="not-the-secret")
    elif case == "old timestamp":
        r, _, _ = slack(stack, fields, ts=int(time.time()) - 360)
    elif case == "future timestamp":
        r, _, _ = slack(stack, fields, ts=int(time.time()) + 360)
    elif case == "no signature":
        r = stack.request("POST", "/chatops/slack", urlencode(fields).encode(), headers={"X-Slack-Request-Timestamp": str(int(time.time()))},
                          content_type="application/x-www-form-urlencoded")
    else:
        _, body, headers = slack(stack, slash("UALICE", f"status {job}"))
        r = stack.request("POST", "/chatops/slack", body.replace(b"status", b"approve"), headers=headers,
                          content_type="application/x-www-form-urlencoded")
    assert_problem(r, 401, "bad-signature")
    assert stack.snapshot() == before
    assert stack.rows("SELECT count(*) FROM approvals WHERE job_id = ?", job) == [(0,)]


def test_a_replayed_slack_request_is_refused(world):
    stack, _ = world
    job = awaiting(stack, "refusals")
    r, body, headers = slack(stack, slash("UALICE", f"approve {job}"))
    assert r.status == 200 and r.json["response_type"] == "in_channel"
    stack.wait_settled()  # the deliverer's own writes are done
    before = stack.snapshot()
    again = stack.request("POST", "/chatops/slack", body, headers=headers, content_type="application/x-www-form-urlencoded")
    problem = assert_problem(again, 401, "bad-signature")
    assert "replay" in problem["detail"]
    assert stack.snapshot() == before


def test_an_unmapped_chat_user_is_refused_with_a_readable_message(world):
    stack, fake = world
    job = awaiting(stack, "refusals")
    wait_until(lambda: slack_messages(fake, "chat.postMessage", job), "no approval request posted")
    stack.wait_settled()
    before, refusals = stack.snapshot(), stack.refusals()
    r, _, _ = slack(stack, slash("UNOBODY", f"approve {job}"))
    assert r.status == 200 and r.json["response_type"] == "ephemeral"
    assert 'your slack user UNOBODY is not linked to a draven person' in r.json["text"]
    assert 'chat = { slack = "UNOBODY" }' in r.json["text"]
    assert stack.snapshot() == before
    # A button's refusal reaches the clicker as an ephemeral message: that row is all it writes.
    r, _, _ = slack(stack, payload=button("UNOBODY", "draven_reject", job))
    assert r.status == 200
    wait_until(lambda: ephemeral(fake, "UNOBODY"), "no ephemeral refusal")
    [reply] = ephemeral(fake, "UNOBODY")
    assert reply["channel"] == "C0DEPLOYS" and "your slack user UNOBODY is not linked" in reply["text"]
    stack.wait_settled()  # the deliverer records Slack's answer after Slack has seen the call
    after = stack.snapshot()
    added = [row for row in after["outbox"] if row not in before["outbox"]]
    # That row, once delivered, is counted in outbox_totals (/metrics): notify, delivered, one attempt.
    totals = {(k, st): (n, a) for k, st, n, a in before["outbox_totals"]}
    n, a = totals.get(("notify", "delivered"), (0, 0))
    totals[("notify", "delivered")] = (n + 1, a + 1)
    assert after["outbox_totals"] == sorted([(k, st, n, a) for (k, st), (n, a) in totals.items()], key=repr)
    assert after == dict(before, outbox=sorted(before["outbox"] + added, key=repr),
                         outbox_totals=after["outbox_totals"])
    [(_, kind, job_id, payload, state, attempts, _, _, delivered_at, last_error, _stream)] = added
    assert (kind, job_id, state, attempts, last_error) == ("notify", None, "delivered", 1, None) and delivered_at
    assert json.loads(payload) == {"channel": "slack_approval", "action": "ephemeral", "slack_channel": "C0DEPLOYS",
                                   "user": "UNOBODY", "text": reply["text"]}
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", job) == [("awaiting_approval",)]
    stack.wait_settled()  # the deliverer's own writes are done
    before = stack.snapshot()
    assert stack.refusals() == refusals + 2
    [(actor, detail)] = stack.rows("SELECT actor, detail FROM audit WHERE outcome = 'refused' ORDER BY id DESC LIMIT 1")
    assert actor == "slack:UNOBODY" and json.loads(detail)["status"] == 403
    # A linked person without the right is refused readably too.
    r, _, _ = slack(stack, slash("UDAVE", f"approve {job}"))
    assert r.status == 200 and "dave is in none of them" in r.json["text"]
    r, _, _ = slack(stack, slash("UALICE", "launch everything"))
    assert r.json["text"].startswith("draven: use approve JOB")
    r, _, _ = slack(stack, slash("UALICE", "approve 999999"))
    assert r.status == 200 and r.json["text"] == "draven: no job 999999"
    r, _, _ = slack(stack, slash("UALICE", "approve soon"))
    assert r.status == 200 and "name the job by its number: approve 12" in r.json["text"]
    assert stack.snapshot() == before


# -- Teams and Mattermost ----------------------------------------------------------------------

def teams(stack, user, text, token=TEAMS_TOKEN, raw=None):
    body = raw or json.dumps({
        "type": "message", "id": str(time.time_ns()), "timestamp": "2026-11-29T23:00:00.000Z", "serviceUrl": "https://smba.trafficmanager.net/emea/",
        "channelId": "msteams", "from": {"id": f"29:{user}-teams-id", "name": user, "aadObjectId": user},
        "conversation": {"isGroup": True, "id": "19:abc@thread.skype"}, "text": text, "textFormat": "plain",
        "channelData": {"teamsChannelId": "19:abc@thread.skype"},
    }).encode()
    mac = base64.b64encode(hmac.new(base64.b64decode(token), body, hashlib.sha256).digest()).decode()
    return stack.request("POST", "/chatops/teams", body, headers={"Authorization": f"HMAC {mac}"}), body, mac


def test_teams_outgoing_webhook_votes(world):
    stack, _ = world
    job = awaiting(stack, "teams")
    r, body, mac = teams(stack, "aad-alice", f"<at>draven</at>&nbsp;approve {job}")
    assert r.status == 200 and r.json == {"type": "message", "text": f"draven: alice approved deploy #{job} of shop refs/heads/main to teams (1 of 2 approvals)"}
    stack.wait_settled()  # the deliverer's own writes are done
    before = stack.snapshot()
    replay = stack.request("POST", "/chatops/teams", body, headers={"Authorization": f"HMAC {mac}"})
    assert_problem(replay, 401, "bad-signature")
    wrong, _, _ = teams(stack, "aad-bob", f"<at>draven</at> approve {job}", token=base64.b64encode(b"another key").decode())
    assert_problem(wrong, 401, "bad-signature")
    missing = stack.request("POST", "/chatops/teams", body)
    assert_problem(missing, 401, "bad-signature")
    assert stack.snapshot() == before
    unmapped, _, _ = teams(stack, "aad-nobody", f"<at>draven</at> approve {job}")
    assert unmapped.status == 200 and "your teams user aad-nobody is not linked" in unmapped.json["text"]
    assert stack.snapshot() == before
    r, _, _ = teams(stack, "aad-bob", f"<at>draven</at> approve {job}")
    assert r.status == 200 and "approved: deploying" in r.json["text"]
    assert stack.wait_for(job, {"running"}) == "running"


def mattermost(stack, user, text, token=SECRETS["mm-token"], header=True):
    fields = {"channel_id": "mmchan", "channel_name": "deploys", "command": "/draven", "response_url": "https://mm.example/hooks/commands/x",
              "team_domain": "acme", "team_id": "mmteam", "text": text, "token": token, "trigger_id": "mmtrigger", "user_id": user,
              "user_name": user}
    headers = {"Authorization": f"Token {token}"} if header else {}
    return stack.request("POST", "/chatops/mattermost", urlencode(fields).encode(), headers=headers,
                         content_type="application/x-www-form-urlencoded")


def test_mattermost_slash_command_votes(world):
    stack, _ = world
    job = awaiting(stack, "mm")
    stack.wait_settled()  # the deliverer's own writes are done
    before = stack.snapshot()
    assert_problem(mattermost(stack, "mm-alice", f"approve {job}", token="wrong-token"), 401, "bad-signature")
    assert stack.snapshot() == before
    unmapped = mattermost(stack, "mm-nobody", f"approve {job}")
    assert unmapped.status == 200 and unmapped.json["response_type"] == "ephemeral" and "not linked" in unmapped.json["text"]
    own = mattermost(stack, "mm-carol", f"approve {job}")  # carol asked for it and has no approve grant
    assert own.status == 200 and "no grant allows you to approve" in own.json["text"]
    assert stack.snapshot() == before
    r = mattermost(stack, "mm-alice", f"approve #{job}")
    assert r.status == 200 and r.json["response_type"] == "in_channel" and "(1 of 2 approvals)" in r.json["text"], r
    r = mattermost(stack, "mm-bob", f"approve {job}", header=False)  # the token in the form field alone
    assert r.status == 200 and "approved: deploying" in r.json["text"]
    assert stack.wait_for(job, {"running"}) == "running"
