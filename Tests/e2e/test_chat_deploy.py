"""`deploy PROJECT ENV REF [reason]` from Slack, Teams and Mattermost, through real nginx + fcgiwrap,
signed as each platform signs: the linked person's grants and the environment's policy decide, as
for POST /api/v1/deploys; the answer comes well within the platform's time limit (the dispatch goes
out after it); refusals are replies in the chat's own format, audited, and change nothing else."""
import base64
import hashlib
import hmac
import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest

from conftest import ROOT, assert_problem, launch

sys.path.insert(0, str(ROOT / "infra"))
from demo_provider import FakeProvider  # noqa: E402

TEAMS_TOKEN = base64.b64encode(b"canaryTEAMSdeploy-0123456789abcd").decode()
SECRETS = {"gh-token": "ghp_canaryCHATDEPLOY", "gh-hook": "canaryGHhookCHAT", "runner": "canaryRUNNERchat",
           "slack-signing": "canarySLACKdeploy77", "teams-token": TEAMS_TOKEN, "mm-token": "canaryMMdeploy55"}
DISPATCHES = "/repos/acme/shop/actions/workflows/deploy.yml/dispatches"


@pytest.fixture(scope="module")
def world():
    fake = FakeProvider().start()
    config = (Path(__file__).parent / "draven.client.toml").read_text().replace("@FAKE@", fake.url)
    try:
        with launch(config, secrets=SECRETS) as stack:
            yield stack, fake
            stack.assert_secrets_absent(SECRETS.values(), ("audit", "job_events", "outbox", "deliveries", "jobs"))
    finally:
        fake.stop()


def slack(stack, user, text, ts=None, now=True):
    fields = {"token": "legacy-ignored", "team_id": "T0", "team_domain": "acme", "channel_id": "C0DEPLOYS",
              "channel_name": "deploys", "user_id": user, "user_name": user.lower(), "command": "/draven", "text": text,
              "response_url": "https://hooks.slack.com/commands/T0/1/x", "trigger_id": str(uuid.uuid4())}
    body = urlencode(fields).encode()
    ts = str(ts or int(time.time()))
    sig = "v0=" + hmac.new(SECRETS["slack-signing"].encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}
    send = lambda: stack.request("POST", "/chatops/slack", body, headers=headers,  # noqa: E731
                                 content_type="application/x-www-form-urlencoded")
    return (send() if now else None), send


def teams(stack, user, text):
    body = json.dumps({
        "type": "message", "id": str(time.time_ns()), "timestamp": "2026-11-29T23:00:00.000Z",
        "serviceUrl": "https://smba.trafficmanager.net/emea/", "channelId": "msteams",
        "from": {"id": f"29:{user}-teams-id", "name": user, "aadObjectId": user},
        "conversation": {"isGroup": True, "id": "19:abc@thread.skype"}, "text": text, "textFormat": "plain",
        "channelData": {"teamsChannelId": "19:abc@thread.skype"},
    }).encode()
    mac = base64.b64encode(hmac.new(base64.b64decode(TEAMS_TOKEN), body, hashlib.sha256).digest()).decode()
    send = lambda: stack.request("POST", "/chatops/teams", body, headers={"Authorization": f"HMAC {mac}"})  # noqa: E731
    return send(), send


def mattermost(stack, user, text, trigger=None):
    fields = {"channel_id": "mmchan", "channel_name": "deploys", "command": "/draven",
              "response_url": "https://mm.example/hooks/commands/x", "team_domain": "acme", "team_id": "mmteam",
              "text": text, "token": SECRETS["mm-token"], "trigger_id": trigger or uuid.uuid4().hex, "user_id": user,
              "user_name": user}
    body = urlencode(fields).encode()
    send = lambda: stack.request("POST", "/chatops/mattermost", body,  # noqa: E731
                                 headers={"Authorization": f"Token {SECRETS['mm-token']}"},
                                 content_type="application/x-www-form-urlencoded")
    return send(), send


PLATFORMS = {
    "slack": (slack, "U{}", lambda r: (r.json["text"], r.json["response_type"] == "in_channel")),
    "teams": (teams, "aad-{}", lambda r: (r.json["text"], None)),
    "mattermost": (mattermost, "mm-{}", lambda r: (r.json["text"], r.json["response_type"] == "in_channel")),
}


def ask(stack, platform, person, text):
    send, user, read = PLATFORMS[platform]
    name = user.format(person.upper() if platform == "slack" else person)
    if platform == "teams":
        text = f"<at>draven</at>&nbsp;{text}"
    reply, again = send(stack, name, text)
    assert reply.status == 200, reply
    if platform == "teams":
        assert reply.json["type"] == "message"
    shown, public = read(reply)
    return shown, public, again


def the_job(stack, ref):
    return stack.rows("SELECT id, state, reason FROM jobs WHERE ref = ? ORDER BY id", ref)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_linked_person_deploys_from_chat(world, platform):
    stack, fake = world
    ref = f"refs/heads/{platform}-1"
    text, public, again = ask(stack, platform, "alice", f"deploy shop chat {platform}-1 hotfix for the cart")
    [(job, _, reason)] = the_job(stack, ref)
    assert text == f"draven: alice asked for deploy #{job} of shop {ref} to chat — deploying", text
    assert public in (True, None)  # shown to the channel, as a vote is
    assert reason == "hotfix for the cart"
    # The same job the API would have made: alice's, dispatched through the outbox to the CI.
    assert stack.wait_for(job, {"running"}) == "running"
    [sent] = [json.loads(r["body"]) for r in fake.received(DISPATCHES) if json.loads(r["body"])["inputs"]["job_id"] == str(job)]
    assert sent["ref"] == ref
    shown = stack.request("GET", f"/api/v1/jobs/{job}", token=stack.tokens["bob"]).json
    assert shown["requested_by"] == "alice" and shown["kind"] == "deploy"
    # Its audit records say it came from the chat, as a vote's do.
    audits = stack.rows("SELECT actor, action, detail FROM audit WHERE subject IN (?, 'shop/chat') AND outcome != 'refused'"
                        " AND action LIKE 'job.%' ORDER BY id", f"job/{job}")
    created = [(a, json.loads(d)) for a, action, d in audits if action == "job.create" and json.loads(d)["job_id"] == job]
    assert [(a, d["via"]) for a, d in created] == [("alice", platform)], audits
    # A resent request deploys nothing: Slack's and Teams' signed request, Mattermost's trigger id.
    stack.wait_settled()
    before, refusals = stack.snapshot(), stack.refusals()
    replay = again()
    assert_problem(replay, 401, "bad-signature")
    assert "replay" in replay.json["detail"]
    assert stack.snapshot() == before and stack.refusals() == refusals + 1
    assert len(the_job(stack, ref)) == 1
    r = stack.request("POST", f"/api/v1/jobs/{job}/cancel", {}, token=stack.tokens["alice"])
    assert r.status == 200, r


def test_copies_arriving_together_deploy_once(world):
    stack, _ = world
    _, send = slack(stack, "UBOB", "deploy shop chat together", now=False)
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: send(), range(6)))
    assert sorted(r.status for r in replies) == [200] + [401] * 5, replies
    [(job, _, _)] = the_job(stack, "refs/heads/together")
    assert stack.rows("SELECT count(*) FROM deliveries WHERE event = 'deploy' AND job_id = ?", job) == [(1,)]
    assert stack.request("POST", f"/api/v1/jobs/{job}/cancel", {}, token=stack.tokens["bob"]).status == 200


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_answer_does_not_wait_for_the_ci(world, platform):
    """Slack and Mattermost give a slash command 3 s, Teams an outgoing webhook about 5 s: the
    answer comes first, the dispatch after it (here the CI takes 4 s to answer)."""
    stack, fake = world
    fake.script(DISPATCHES, {"status": 200, "delay": 4, "body": {"workflow_run_id": 424242 + len(platform),
                                                                  "run_url": "x", "html_url": "https://ci/run"}})
    started = time.monotonic()
    text, _, _ = ask(stack, platform, "bob", f"deploy shop slow slow-{platform}")
    took = time.monotonic() - started
    [(job, state, _)] = the_job(stack, f"refs/heads/slow-{platform}")
    assert took < 2.5, took
    assert text.endswith("— deploying") and state == "dispatching"
    assert stack.wait_for(job, {"running"}, timeout=20) == "running"  # the CI answered after all
    assert stack.request("POST", f"/api/v1/jobs/{job}/cancel", {}, token=stack.tokens["bob"]).status == 200


def test_a_deploy_that_needs_approval_is_approved_from_chat(world):
    stack, _ = world
    text, _, _ = ask(stack, "slack", "alice", "deploy shop prod v3.0.0")
    [(job, state, _)] = the_job(stack, "refs/tags/v3.0.0")
    assert state == "awaiting_approval"
    assert text == f"draven: alice asked for deploy #{job} of shop refs/tags/v3.0.0 to prod — it needs 1 approval: approve {job}"
    text, _, _ = ask(stack, "mattermost", "bob", f"approve {job}")
    assert "approved: deploying" in text
    assert stack.wait_for(job, {"running"}) == "running"
    # A second deploy to the same environment queues behind it.
    text, _, _ = ask(stack, "teams", "bob", "deploy shop prod v3.0.1 after v3")
    [(second, state, _)] = the_job(stack, "refs/tags/v3.0.1")
    assert state == "awaiting_approval"
    text, _, _ = ask(stack, "slack", "alice", f"approve {second}")
    assert "queued until the environment is free" in text
    for j in (second, job):
        assert stack.request("POST", f"/api/v1/jobs/{j}/cancel", {}, token=stack.tokens["alice"]).status == 200


REFUSALS = [
    ("dave", "deploy shop demo main", "no grant allows you to deploy shop/demo"),
    ("carol", "deploy shop prod v9.9.9", "no grant allows you to deploy shop/prod"),
    ("alice", "deploy shop prod refs/heads/main", "prod accepts only tag v*; branch main does not match"),
    ("alice", "deploy shop nowhere main", "project shop has no environment nowhere"),
    ("alice", "deploy shop demo", "name what to deploy: deploy PROJECT ENV REF [reason]"),
    ("alice", "deploy shop demo -rf", "/ref: may not start with '-'"),
    ("alice", "deploy shop demo main " + "x" * 1001, "/reason: is longer than 1000 bytes"),
]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("who, text, says", REFUSALS)
def test_refused_chat_deploys_are_replies_that_change_nothing(world, platform, who, text, says):
    stack, _ = world
    stack.wait_settled()
    before, refusals = stack.snapshot(), stack.refusals()
    shown, public, _ = ask(stack, platform, who, text)
    assert shown.startswith("draven: ") and says in shown, shown
    assert public in (False, None)  # only the asker sees a refusal (Slack and Mattermost: ephemeral)
    assert stack.snapshot() == before
    assert stack.refusals() == refusals + 1
    [(actor, detail)] = stack.rows("SELECT actor, detail FROM audit WHERE outcome = 'refused' ORDER BY id DESC LIMIT 1")
    assert actor == who and json.loads(detail)["status"] in (403, 404, 422)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_unlinked_user_and_a_busy_environment(world, platform):
    stack, _ = world
    stack.wait_settled()
    before = stack.snapshot()
    send, _, read = PLATFORMS[platform]
    reply, _ = send(stack, "NOBODY", "deploy shop demo main")
    assert reply.status == 200 and "is not linked to a draven person" in read(reply)[0], reply
    assert stack.snapshot() == before
    # busy rejects when locked: the holder is asked for through the chat too.
    text, _, _ = ask(stack, platform, "alice", f"deploy shop busy hold-{platform}")
    [(holder, state, _)] = the_job(stack, f"refs/heads/hold-{platform}")
    assert state in ("dispatching", "running"), text
    stack.wait_for(holder, {"running"})
    stack.wait_settled()
    before = stack.snapshot()
    shown, _, _ = ask(stack, platform, "bob", "deploy shop busy second")
    assert shown == f"draven: busy is locked by job {holder} and its policy is to reject, not queue"
    assert stack.snapshot() == before
    assert stack.request("POST", f"/api/v1/jobs/{holder}/cancel", {}, token=stack.tokens["alice"]).status == 200


def test_usage_names_deploy(world):
    stack, _ = world
    shown, _, _ = ask(stack, "slack", "alice", "launch everything")
    assert shown.startswith("draven: use approve JOB") and "deploy PROJECT ENV REF [reason]" in shown
