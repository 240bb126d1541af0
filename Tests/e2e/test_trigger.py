"""POST /api/v1/deploys and the status routes, through real nginx + fcgiwrap."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import assert_problem, conforms


def lock_of(stack, project, env):
    rows = stack.rows("""SELECT l.job_id, l.fencing_token FROM locks l JOIN environments e ON e.id = l.environment_id
                         JOIN projects p ON p.id = e.project_id WHERE p.name = ? AND e.name = ?""", project, env)
    return rows[0] if rows else (None, 0)


def test_branch_policy_takes_the_lock_and_dispatches(stack):
    r = stack.deploy("carol", "shop", "demo", "develop", reason="ship it")
    assert r.status == 201, r
    job = r.json
    assert r.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["state"] == "dispatching"
    assert job["ref"] == "refs/heads/develop" and job["ref_kind"] == "branch"
    assert job["requested_by"] == "carol" and job["reason"] == "ship it"
    assert job["fencing_token"] >= 1
    assert lock_of(stack, "shop", "demo") == (job["id"], job["fencing_token"])
    assert stack.rows("SELECT kind, payload FROM outbox WHERE job_id = ?", job["id"]) == [
        ("dispatch", f'{{"job_id":{job["id"]},"fencing_token":{job["fencing_token"]}}}')]
    actions = [a for (a,) in stack.rows("SELECT action FROM audit WHERE subject IN (?, ?) ORDER BY id", "shop/demo", f"job/{job['id']}")]
    assert actions[-2:] == ["job.create", "job.dispatching"]

    # A second deploy to the busy environment queues behind the first (policy: queue).
    r2 = stack.deploy("carol", "shop", "demo", "refs/heads/develop")
    assert r2.status == 201, r2
    assert r2.json["state"] == "queued" and r2.json["fencing_token"] is None
    assert lock_of(stack, "shop", "demo")[0] == job["id"]
    assert stack.rows("SELECT count(*) FROM outbox WHERE job_id = ?", r2.json["id"]) == [(0,)]

    # status shows the job with its history, and the locks.
    s = stack.request("GET", f"/api/v1/jobs/{job['id']}", token=stack.tokens["carol"])
    assert s.status == 200, s
    assert [(e["event"], e["from"], e["to"]) for e in s.json["events"]] == [
        ("created", None, "pending"), ("transition", "pending", "dispatching")]
    locks = stack.request("GET", "/api/v1/locks", token=stack.tokens["carol"])
    assert locks.status == 200
    conforms(locks.json, "Locks")
    demo = [l for l in locks.json["locks"] if l["environment"] == "demo"][0]
    assert demo["held"] and demo["job_id"] == job["id"] and demo["queued"] >= 1


def test_tag_policy_with_approvals_waits_without_the_lock(stack):
    before = lock_of(stack, "shop", "prod")
    r = stack.deploy("alice", "shop", "prod", "v1.2.0")  # short name on a tags-only env means the tag
    assert r.status == 201, r
    assert r.json["state"] == "awaiting_approval"
    assert r.json["ref"] == "refs/tags/v1.2.0"
    assert lock_of(stack, "shop", "prod") == before
    assert stack.rows("SELECT count(*) FROM outbox WHERE job_id = ?", r.json["id"]) == [(0,)]


def test_reject_policy_answers_409_when_busy_and_changes_nothing(stack):
    first = stack.deploy("carol", "shop", "staging", "refs/heads/release/2.0")
    assert first.status == 201 and first.json["state"] == "dispatching", first
    before, refusals = stack.snapshot(), stack.refusals()
    second = stack.deploy("carol", "shop", "staging", "refs/heads/main")
    problem = assert_problem(second, 409, "environment-busy")
    assert problem["held_by"] == first.json["id"]
    assert stack.snapshot() == before
    assert stack.refusals() == refusals + 1


def test_token_from_the_configured_header(stack):
    r = stack.deploy(None, "shop", "demo", "develop", headers={"X-Token-XPipe": stack.tokens["carol"]})
    assert r.status == 201, r


BIG = b'{"project":"shop","environment":"demo","ref":"develop","reason":"' + b"x" * 100_000 + b'"}'
HUGE = b"{" + b" " * 2_000_000 + b"}"

# (name, request kwargs, status, problem type)
REFUSALS = [
    ("no token", dict(token=None), 401, "unauthenticated"),
    ("bad token", dict(token="drv_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 401, "unauthenticated"),
    ("garbage token", dict(token="hunter2"), 401, "unauthenticated"),
    ("revoked token", dict(token="revoked"), 401, "unauthenticated"),
    ("no grant", dict(token="dave"), 403, "forbidden"),
    ("grant elsewhere", dict(token="carol", body={"project": "shop", "environment": "prod", "ref": "v1.0.0"}), 403, "forbidden"),
    ("branch on tags-only env", dict(body={"project": "shop", "environment": "prod", "ref": "refs/heads/main"}), 403, "policy-denied"),
    ("tag not matching", dict(body={"project": "shop", "environment": "prod", "ref": "refs/tags/release-1"}), 403, "policy-denied"),
    ("wrong branch", dict(body={"project": "shop", "environment": "demo", "ref": "main"}), 403, "policy-denied"),
    ("ambiguous short ref", dict(body={"project": "shop", "environment": "staging", "ref": "main"}), 422, "invalid-field"),
    ("malformed JSON", dict(body=b'{"project": "shop",'), 400, "malformed-request"),
    ("duplicate keys", dict(body=b'{"project":"shop","project":"x","environment":"demo","ref":"develop"}'), 400, "malformed-request"),
    ("not an object", dict(body=b'["shop"]'), 400, "malformed-request"),
    ("empty body", dict(body=b""), 400, "malformed-request"),
    ("wrong content type", dict(content_type="text/plain"), 415, "unsupported-media-type"),
    ("form content type", dict(content_type="application/x-www-form-urlencoded"), 415, "unsupported-media-type"),
    ("body too large for trigger", dict(body=BIG), 413, "body-too-large"),
    ("body too large for nginx", dict(body=HUGE), 413, "body-too-large"),
    ("unknown project", dict(body={"project": "nope", "environment": "demo", "ref": "develop"}), 404, "not-found"),
    ("unknown environment", dict(body={"project": "shop", "environment": "nope", "ref": "develop"}), 404, "not-found"),
    ("missing ref", dict(body={"project": "shop", "environment": "demo"}), 422, "invalid-field"),
    ("ref not a string", dict(body={"project": "shop", "environment": "demo", "ref": 7}), 422, "invalid-field"),
    ("unknown field", dict(body={"project": "shop", "environment": "demo", "ref": "develop", "force": True}), 422, "invalid-field"),
    ("bad sha", dict(body={"project": "shop", "environment": "demo", "ref": "develop", "sha": "abc"}), 422, "invalid-field"),
    ("option-like ref", dict(body={"project": "shop", "environment": "demo", "ref": "refs/heads/-x", "ref_kind": "branch"}), 422, "invalid-field"),
    ("bad ref_kind", dict(body={"project": "shop", "environment": "demo", "ref": "develop", "ref_kind": "commit"}), 422, "invalid-field"),
]


@pytest.mark.parametrize("name,kwargs,status,ptype", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusal_changes_nothing(stack, name, kwargs, status, ptype):
    kwargs = dict(kwargs)
    body = kwargs.pop("body", {"project": "shop", "environment": "demo", "ref": "develop"})
    token = kwargs.pop("token", "alice")
    token = stack.tokens.get(token, token) if token else None
    before, refusals = stack.snapshot(), stack.refusals()
    r = stack.request("POST", "/api/v1/deploys", body, token=token, **kwargs)
    problem = assert_problem(r, status, ptype)
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    if name == "ambiguous short ref":
        assert problem["pointer"] == "/ref" and "refs/heads/main" in problem["detail"]
    if ptype == "policy-denied":
        assert problem["rule"] == "refs"
    assert stack.snapshot() == before
    # nginx answers the 2 MB body itself (never reaches draven); every other refusal is audited.
    assert stack.refusals() == refusals + (0 if name == "body too large for nginx" else 1)


def test_wrong_method_and_unknown_route(stack):
    assert_problem(stack.request("GET", "/api/v1/deploys", token=stack.tokens["alice"]), 405, "method-not-allowed")
    assert_problem(stack.request("GET", "/api/v2/nothing"), 404, "not-found")


def test_idempotency_key_returns_the_same_job(stack):
    h = {"Idempotency-Key": "deploy-abc-1"}
    first = stack.deploy("carol", "shop", "demo", "develop", reason="retry me", headers=h)
    assert first.status == 201, first
    again = stack.deploy("carol", "shop", "demo", "develop", reason="retry me", headers=h)
    assert again.status == 200, again
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["id"] == first.json["id"]
    before = stack.snapshot()
    other = stack.deploy("carol", "shop", "demo", "develop", reason="something else", headers=h)
    assert_problem(other, 422, "idempotency-key-reused")
    assert stack.snapshot() == before
    # The key is per person: another person's request with the same key is a new job.
    alice = stack.deploy("alice", "shop", "demo", "develop", reason="retry me", headers=h)
    assert alice.status == 201 and alice.json["id"] != first.json["id"]


def test_status_needs_a_token_and_a_read_grant(stack):
    prod = stack.deploy("alice", "shop", "prod", "refs/tags/v2.0.0").json["id"]
    assert_problem(stack.request("GET", f"/api/v1/jobs/{prod}"), 401, "unauthenticated")
    assert_problem(stack.request("GET", f"/api/v1/jobs/{prod}", token=stack.tokens["carol"]), 404, "not-found")
    assert stack.request("GET", f"/api/v1/jobs/{prod}", token=stack.tokens["bob"]).status == 200
    assert_problem(stack.request("GET", "/api/v1/jobs/999999", token=stack.tokens["bob"]), 404, "not-found")
    assert_problem(stack.request("GET", "/api/v1/jobs/abc", token=stack.tokens["bob"]), 404, "not-found")
    listed = stack.request("GET", "/api/v1/jobs?project=shop", token=stack.tokens["carol"]).json["jobs"]
    assert listed and all(j["environment"] in ("demo", "staging") for j in listed)
    assert_problem(stack.request("GET", "/api/v1/locks"), 401, "unauthenticated")
    assert stack.request("GET", "/").json["service"] == "draven"
    assert_problem(stack.request("GET", "/metrics", token=stack.tokens["bob"]), 403, "forbidden")  # no metrics grant
    metrics = stack.request("GET", "/metrics", token=stack.tokens["alice"])
    assert metrics.status == 200 and b"draven_locks_held" in metrics.body


@pytest.mark.parametrize("env,mode", [("q1", "queue"), ("q2", "queue"), ("q3", "queue"),
                                      ("r1", "reject"), ("r2", "reject"), ("r3", "reject")])
def test_two_concurrent_triggers_one_lock_holder(stack, env, mode):
    barrier = threading.Barrier(2)

    def go(i):
        barrier.wait()
        return stack.deploy("alice", "race", env, f"refs/heads/b{i}")

    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(go, range(2)))
    statuses = sorted(r.status for r in replies)
    states = sorted(r.json.get("state", "") for r in replies if r.status == 201)
    if mode == "queue":
        assert statuses == [201, 201], replies
        assert states == ["dispatching", "queued"]
    else:
        assert statuses == [201, 409], replies
        assert states == ["dispatching"]
    holder = [r.json["id"] for r in replies if r.status == 201 and r.json["state"] == "dispatching"]
    assert lock_of(stack, "race", env)[0] == holder[0]


def test_fifty_concurrent_triggers_across_environments_lose_nothing(stack):
    before = stack.rows("SELECT count(*) FROM jobs")[0][0]

    def go(i):
        return stack.deploy("alice", "load", f"e{i % 10}", f"refs/heads/feature-{i}")

    with ThreadPoolExecutor(50) as pool:
        replies = list(pool.map(go, range(50)))
    assert [r.status for r in replies] == [201] * 50, [r for r in replies if r.status != 201]
    assert len({r.json["id"] for r in replies}) == 50
    assert stack.rows("SELECT count(*) FROM jobs")[0][0] == before + 50
    per_env = stack.rows("""SELECT e.name, sum(j.state = 'dispatching'), sum(j.state = 'queued') FROM jobs j
                            JOIN environments e ON e.id = j.environment_id JOIN projects p ON p.id = j.project_id
                            WHERE p.name = 'load' GROUP BY e.name ORDER BY e.name""")
    assert per_env == [(f"e{i}", 1, 4) for i in range(10)]
    assert stack.rows("SELECT count(*) FROM outbox o JOIN jobs j ON j.id = o.job_id JOIN projects p ON p.id = j.project_id WHERE p.name = 'load'") == [(10,)]


def test_audit_chain_is_intact(stack):
    out = stack.draven("audit", "verify")
    assert "intact" in out.stdout
