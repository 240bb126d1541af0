"""The event stream end to end: jobs moved through real nginx + fcgiwrap, their events delivered
by draven-deliver and draven sweep to a receiver on 127.0.0.1 that this test starts, checked with
the reference implementations (PyPI standardwebhooks and cloudevents): signatures, order and
sequence numbers, at-least-once with a stable id, dead letters and redelivery, nothing for a
refused request, and the W3C traceparent from the request to the CloudEvents and the dispatch."""
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cloudevents.core.bindings import http as ce_http
from standardwebhooks.webhooks import Webhook

from conftest import ROOT, assert_problem, launch

sys.path.insert(0, str(ROOT / "infra"))
from demo_provider import FakeProvider  # noqa: E402

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
KEYS = {name: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode() for name in ("all", "flaky", "down")}


class Receiver:
    """A subscriber's endpoint: records every request by path; `/flaky` answers 503 to the first two
    attempts of each webhook-id, `/down` answers 500 while `down` is set."""

    def __init__(self):
        self.got = []
        self.lock = threading.Lock()
        self.seen = {}
        self.down = True
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.answer(self.path.split("?")[0], dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path, headers, body):
        with self.lock:
            wid = headers.get("webhook-id")
            n = self.seen[(path, wid)] = self.seen.get((path, wid), 0) + 1
            if path == "/flaky" and n <= 2:
                status = 503
            elif path == "/down" and self.down:
                status = 500
            else:
                status = 200
            self.got.append({"path": path, "headers": headers, "body": body, "status": status})
            return status

    def received(self, path, ok_only=True):
        with self.lock:
            return [r for r in self.got if r["path"] == path and (r["status"] == 200 or not ok_only)]

    def events(self, path):
        """The delivered CloudEvents of `path`, each verified: the Standard Webhooks signature under the
        subscriber's key and the CloudEvents structured format (the reference parsers)."""
        out = []
        for r in self.received(path):
            h = {k.lower(): v for k, v in r["headers"].items()}
            assert h["content-type"].startswith("application/cloudevents+json")
            webhook = Webhook(KEYS[path[1:]])
            if abs(int(h["webhook-timestamp"]) - time.time()) < 300:
                webhook.verify(r["body"], h)  # raises on a bad signature or a stale timestamp
            else:
                # Sent by `draven sweep` on a clock moved hours on (DRAVEN_NOW): the timestamp is that
                # clock's, which verify() calls too new; the signature is still the reference's.
                at = datetime.fromtimestamp(int(h["webhook-timestamp"]), tz=timezone.utc)
                assert webhook.sign(h["webhook-id"], at, r["body"].decode()) in h["webhook-signature"].split(" ")
            event = ce_http.from_structured_event(ce_http.HTTPMessage(headers=h, body=r["body"]))
            assert event.get_id() == h["webhook-id"]
            out.append(event)
        return out

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def world():
    fake = FakeProvider().start()
    receiver = Receiver()
    secrets_ = {"token": "ghp_canaryEVENTS01", "runner": "canaryEVENTSrunner"}
    for name in KEYS:
        secrets_[f"events-{name}-url"] = f"{receiver.url}/{name}?token=canaryURLtoken{name}"
        secrets_[f"events-{name}-key"] = KEYS[name]
    config = (Path(__file__).parent / "draven.events.toml").read_text().replace("@FAKE@", fake.url)
    try:
        with launch(config, people=("alice", "bob"), secrets=secrets_) as stack:
            yield stack, fake, receiver
            # No secret (the receivers' URLs carry a token; the signing keys) in any log or readable table.
            stack.assert_secrets_absent(
                [v for v in secrets_.values()] + [f"canaryURLtoken{n}" for n in KEYS],
                ("audit", "job_events", "outbox", "events", "event_attempts", "event_deliveries"), store=True)
    finally:
        receiver.stop()
        fake.stop()


def wait(predicate, timeout=15, what=""):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what() if callable(what) else what}"
        time.sleep(0.05)


def report(stack, job_id, result):
    """The runner's signed final result."""
    token = stack.rows("SELECT fencing_token FROM jobs WHERE id = ?", job_id)[0][0]
    body = json.dumps({"job_id": job_id, "fencing_token": token, "result": result}).encode()
    ts = str(int(time.time()))
    sig = "v1=" + hmac.new(b"canaryEVENTSrunner", ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    r = stack.request("POST", "/hooks/runner", body, headers={"X-Draven-Timestamp": ts, "X-Draven-Signature": sig})
    assert r.status == 200, r


def of_job(events, job_id):
    return [e for e in events if e.get_subject() == f"job/{job_id}"]


def kinds(events):
    return [(e.get_type(), e.get_data().get("customData", e.get_data())["job"]["state"]) for e in events]


def test_a_deploy_is_told_in_order_signed_and_traced(world):
    stack, fake, receiver = world
    r = stack.deploy("alice", "shop", "ok", "main", headers={"traceparent": TRACEPARENT})
    assert r.status == 201, r
    job = r.json["id"]
    assert stack.wait_for(job, {"running"}) == "running"
    report(stack, job, "succeeded")
    wait(lambda: len(of_job(receiver.events("/all"), job)) >= 8,
         what=lambda: f"the deploy's eight events: {stack.rows('SELECT id, kind, state, attempts, last_error, stream FROM outbox')}, {[(r['path'], r['status']) for r in receiver.got]}")
    events = of_job(receiver.events("/all"), job)
    assert kinds(events) == [
        ("dev.draven.job.created", "pending"),
        ("dev.draven.job.dispatching", "dispatching"),
        ("dev.draven.lock.acquired", "dispatching"),
        ("dev.cdevents.pipelinerun.started.0.2.0", "running"),
        ("dev.cdevents.pipelinerun.finished.0.2.0", "succeeded"),
        ("dev.draven.lock.released", "succeeded"),
        ("dev.cdevents.service.deployed.0.2.0", "succeeded"),  # the environment's first release
        ("dev.cdevents.environment.modified.0.2.0", "succeeded"),
    ]
    for e in events:
        assert e.get_source() == "https://draven.test" and e.get_specversion() == "1.0"
        assert e.get_extension("traceparent") == TRACEPARENT
    # CDEvents: the CDEvent is the data, its context repeating the CloudEvent's.
    finished = events[4].get_data()
    assert finished["context"]["id"] == events[4].get_id() and finished["context"]["version"] == "0.4.1"
    assert finished["subject"]["type"] == "pipelineRun" and finished["subject"]["content"]["outcome"] == "success"
    deployed = events[6].get_data()["subject"]
    assert deployed["type"] == "service" and deployed["content"]["environment"]["id"] == "shop/ok"
    # The trace context was kept with the job, logged with its creation, and passed to the pipeline.
    assert stack.rows("SELECT traceparent FROM jobs WHERE id = ?", job) == [(TRACEPARENT,)]
    [(detail,)] = stack.rows("SELECT detail FROM job_events WHERE job_id = ? AND event = 'created'", job)
    assert json.loads(detail)["traceparent"] == TRACEPARENT
    [dispatch] = [d for d in fake.received("/repos/acme/shop/actions/workflows/") if f'"job_id":"{job}"' in d["body"].decode()]
    assert json.loads(dispatch["body"])["inputs"]["traceparent"] == TRACEPARENT


def test_a_bad_traceparent_is_ignored_not_refused(world):
    stack, fake, receiver = world
    r = stack.deploy("alice", "shop", "ok", "main", headers={"traceparent": "00-not-a-trace-context-01"})
    assert r.status == 201, r
    job = r.json["id"]
    assert stack.wait_for(job, {"running"}) == "running"
    assert stack.rows("SELECT traceparent FROM jobs WHERE id = ?", job) == [(None,)]
    report(stack, job, "failed")
    wait(lambda: any(e.get_type().endswith("pipelinerun.finished.0.2.0") for e in of_job(receiver.events("/all"), job)))
    events = of_job(receiver.events("/all"), job)
    assert all(e.get_extension("traceparent") is None for e in events)
    finished = [e for e in events if e.get_type().endswith("pipelinerun.finished.0.2.0")][0]
    assert finished.get_data()["subject"]["content"]["outcome"] == "failure"
    [dispatch] = [d for d in fake.received("/repos/acme/shop/actions/workflows/") if f'"job_id":"{job}"' in d["body"].decode()]
    assert "traceparent" not in json.loads(dispatch["body"])["inputs"]


def test_approvals_are_events_too(world):
    stack, fake, receiver = world
    r = stack.deploy("alice", "shop", "gated", "main")
    assert r.status == 201 and r.json["state"] == "awaiting_approval", r
    job = r.json["id"]
    r = stack.request("POST", f"/api/v1/jobs/{job}/approvals", {"decision": "approve"}, token=stack.tokens["bob"])
    assert r.status in (200, 201), r
    wait(lambda: any(e.get_type() == "dev.draven.lock.acquired" for e in of_job(receiver.events("/all"), job)))
    types = [e.get_type() for e in of_job(receiver.events("/all"), job)]
    assert types[:5] == [
        "dev.draven.job.created", "dev.draven.job.awaiting_approval", "dev.draven.approval.approved",
        "dev.draven.job.approved", "dev.draven.job.dispatching",
    ]
    approved = [e for e in of_job(receiver.events("/all"), job) if e.get_type() == "dev.draven.approval.approved"][0]
    assert approved.get_data()["actor"] == "bob"
    assert stack.wait_for(job, {"running"}) == "running"
    report(stack, job, "succeeded")


def test_a_plan_run_is_told_with_its_votes_and_its_trace(world):
    """plan_run.started and .finished as CDEvents pipeline runs, the approval step's vote as an
    approval event about the run, and the run's traceparent on all of them and on its step's job."""
    stack, fake, receiver = world
    plan = {"id": "told", "inputs": {"ref": {"type": "branch", "default": "main"}}, "steps": [
        {"id": "approve", "type": "approval", "approvals": 1, "approver_groups": ["leads"]},
        {"id": "ship", "type": "deploy", "project": "shop", "environment": "ok", "ref": "${inputs.ref}",
         "depends_on": ["approve"]}]}
    assert stack.request("POST", "/api/v1/plans", plan, token=stack.tokens["alice"]).status in (200, 201)
    r = stack.request("POST", "/api/v1/plans/told/runs", {"inputs": {"ref": "main"}, "reason": "events"},
                      token=stack.tokens["alice"], headers={"traceparent": TRACEPARENT})
    assert r.status == 201, r
    run = r.json["run_id"]
    r = stack.request("POST", f"/api/v1/runs/{run}/steps/approve/approvals", {"decision": "approve", "comment": "ok"},
                      token=stack.tokens["bob"])
    assert r.status == 201, r
    wait(lambda: stack.rows("SELECT job_id FROM plan_steps WHERE run_id = ? AND step_id = 'ship' "
                            "AND job_id IS NOT NULL", run), what="the ship step's job")
    [(job,)] = stack.rows("SELECT job_id FROM plan_steps WHERE run_id = ? AND step_id = 'ship'", run)
    assert stack.wait_for(job, {"running"}) == "running"
    report(stack, job, "succeeded")

    def told():
        return [e for e in receiver.events("/all") if e.get_subject() == f"plan_run/{run}"]
    wait(lambda: len(told()) >= 3, what=lambda: [e.get_type() for e in told()])
    events = told()
    assert [e.get_type() for e in events] == [
        "dev.cdevents.pipelinerun.started.0.2.0", "dev.draven.approval.approved",
        "dev.cdevents.pipelinerun.finished.0.2.0",
    ]
    vote = events[1].get_data()
    assert (vote["step"], vote["actor"], vote["approvals"], vote["required"], vote["comment"]) == \
        ("approve", "bob", 1, 1, "ok")
    assert vote["plan_run"]["id"] == run and vote["plan_run"]["plan"] == "told"
    finished = events[2].get_data()
    assert finished["subject"]["content"]["outcome"] == "success"
    assert finished["customData"]["plan_run"]["status"] == "succeeded"
    assert all(e.get_extension("traceparent") == TRACEPARENT for e in events)
    assert stack.rows("SELECT traceparent FROM jobs WHERE id = ?", job) == [(TRACEPARENT,)]
    assert all(e.get_extension("traceparent") == TRACEPARENT for e in of_job(receiver.events("/all"), job))


def test_a_refused_request_writes_and_sends_nothing(world):
    stack, fake, receiver = world
    # ("flaky" and "down" have rows waiting for their backoff; the others are done.)
    wait(lambda: not stack.rows("SELECT 1 FROM outbox WHERE state = 'delivering' OR (state = 'pending' AND "
                                "(stream IS NULL OR stream = 'event:all'))"), what="the deliverers")
    before = (stack.rows("SELECT count(*) FROM events"), stack.rows("SELECT count(*) FROM outbox"), len(receiver.got))
    r = stack.deploy("alice", "shop", "prod", "main", headers={"traceparent": TRACEPARENT})  # prod takes v* tags only
    assert_problem(r, 403, "policy-denied")
    time.sleep(0.5)
    after = (stack.rows("SELECT count(*) FROM events"), stack.rows("SELECT count(*) FROM outbox"), len(receiver.got))
    assert after == before


def test_retries_keep_the_id_and_the_order(world):
    """"flaky" refuses the first two attempts of each event: each is retried (by draven sweep, after its
    backoff) with the same webhook-id, and a later event of the stream waits for the one before it."""
    stack, fake, receiver = world
    later = 0
    while stack.rows("SELECT count(*) FROM outbox WHERE state IN ('pending', 'delivering')")[0][0]:
        later += 700  # past any backoff (at most 40 s here), and every sweep later than the last
        assert later < 30 * 700, stack.rows("SELECT * FROM outbox WHERE state IN ('pending', 'delivering')")
        stack.sweep_once(later)
    attempts = receiver.received("/flaky", ok_only=False)
    delivered = receiver.events("/flaky")
    assert delivered, attempts
    sequences = [int(e.get_extension("sequence")) for e in delivered]
    assert sequences == list(range(1, len(sequences) + 1)), sequences  # in order, none lost, none twice
    assert all(len(e.get_extension("sequence")) == 20 for e in delivered)
    for e in delivered:
        tries = [a for a in attempts if a["headers"]["webhook-id"] == e.get_id()]
        assert [a["status"] for a in tries] == [503, 503, 200]
        assert len({a["body"] for a in tries}) == 1  # the same document each time
    # No event was tried before the one ahead of it in the stream was delivered.
    order = [a["headers"]["webhook-id"] for a in attempts]
    firsts = [order.index(e.get_id()) for e in delivered]
    lasts = [max(i for i, w in enumerate(order) if w == e.get_id()) for e in delivered]
    assert all(lasts[i] < firsts[i + 1] for i in range(len(delivered) - 1))
    # The delivery log has every attempt, with its status, never the URL.
    log = stack.rows("SELECT status FROM event_attempts WHERE subscription = 'flaky' ORDER BY id")
    assert [s for (s,) in log].count(503) == 2 * len(delivered)


def test_a_dead_event_lets_the_stream_go_on_and_can_be_redelivered(world):
    stack, fake, receiver = world
    stack.wait_settled()
    dead = stack.rows(
        "SELECT o.id, json_extract(o.payload, '$.event') FROM outbox o WHERE o.stream = 'event:down' ORDER BY o.id")
    assert dead and all(
        s == "dead" for (s,) in stack.rows("SELECT state FROM outbox WHERE stream = 'event:down'")), dead
    first_event = dead[0][1]
    # Each dead event was tried twice (max_attempts = 2), and said so in the audit trail.
    tries = stack.rows("SELECT status FROM event_attempts WHERE subscription = 'down' AND event = ?", first_event)
    assert tries == [(500,), (500,)]
    assert stack.rows("SELECT count(*) FROM audit WHERE action = 'event.dead'")[0][0] >= len(dead)
    # Each later job.created was tried as soon as the one before it had died: the stream went on.
    assert len({r["headers"]["webhook-id"] for r in receiver.received("/down", ok_only=False)}) == len(dead)
    log = stack.draven("events", "log", str(first_event)).stdout
    assert "down" in log and "500" in log and "canaryURLtoken" not in log
    # Healthy again: a replay of the first one arrives with its id and sequence number.
    receiver.down = False
    original = [r for r in receiver.received("/down", ok_only=False)][0]
    done = stack.draven("events", "redeliver", str(first_event), "--subscription", "down")
    assert "1 deliveries" in done.stdout, done.stdout
    [replayed] = receiver.events("/down")
    assert replayed.get_id() == original["headers"]["webhook-id"]
    assert replayed.get_extension("sequence") == "00000000000000000001"
    # --since replays every event since then to its subscribers (here: all of them, to "down" only).
    since = stack.draven("events", "redeliver", "--since", "1d", "--subscription", "down").stdout
    assert f"{len(dead)} deliveries" in since, since
    assert len(receiver.events("/down")) == 1 + len(dead)
    listed = stack.draven("events", "list").stdout
    assert "down #1 delivered" in listed, listed
