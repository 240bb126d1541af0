"""Deploy plans end to end: runs started through nginx + fcgiwrap (the `plans` function), every
deploy step an ordinary job that draven dispatches to the stand-in CI, whose pipeline runs the real
shell runner on the demo project; each run advances in the transaction of the runner's callback
that ends its step's job (no sweep service runs: `draven sweep --once` only where a test needs time
to pass).

Plans are applied as documents through `POST /api/v1/plans` (test_plans.py covers applying itself)."""
import contextlib
import hashlib
import hmac
import http.server
import json
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, free_port, launch

sys.path.insert(0, str(ROOT / "infra"))
from demo_pipeline import Pipelines  # noqa: E402
from demo_provider import FakeProvider  # noqa: E402

HEALTH_PORT = free_port()
HEALTH_TOKEN = "canaryPLANhealthToken"
SECRETS = {"token": "ghp_canaryPLANtoken01", "runner": "canaryPLANrunnerSecret", "hook": "canaryPLANhookSecret",
           "shop-health": f"http://127.0.0.1:{HEALTH_PORT}/health?token={HEALTH_TOKEN}"}
FAST = {"DEMO_STEP_SECONDS": "0.3", "DEMO_SLOW_STEP_SECONDS": "2", "DRAVEN_HEARTBEAT_EVERY": "1"}


@contextlib.contextmanager
def plans_stack(tmp_path_factory, extra_people=(), **launch_args):
    """A stack with draven.plans.toml applied, dispatching to the stand-in CI, whose pipelines run the real runner;
    `extra_people`: people of the configuration without any grant."""
    pipelines = Pipelines(project=ROOT / "infra" / "examples" / "demo", variables={"DRAVEN_URL": "set below"},
                          secret=SECRETS["runner"], machine_env=FAST, log_dir=tmp_path_factory.mktemp("ci"))
    fake = FakeProvider(pipelines=pipelines).start()
    config = (Path(__file__).parent / "draven.plans.toml").read_text().replace("@FAKE@", fake.url)
    config = config.replace("[people.carol]\n", "[people.carol]\n" + "".join(f"[people.{p}]\n" for p in extra_people))
    try:
        people = ("alice", "bob", "dana", "carol") + tuple(extra_people)
        with launch(config, people=people, secrets=SECRETS, **launch_args) as stack:
            pipelines.variables["DRAVEN_URL"] = stack.url
            yield stack
            pipelines.wait_idle(timeout=60)
    finally:
        pipelines.stop()
        fake.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with plans_stack(tmp_path_factory) as stack:
        yield stack


# -- plan documents, applied through the API -------------------------------------------------------

def seconds(n):
    return None if n is None else f"{n}s"


def deploy(step_id, project, environment, ref_text="${inputs.ref}", after=(), condition=None, timeout=None,
           retry=None, compensate=False):
    step = {"id": step_id, "type": "deploy", "project": project, "environment": environment, "ref": ref_text,
            "depends_on": list(after)}
    if condition:
        step["condition"] = condition
    if timeout:
        step["timeout"] = seconds(timeout)
    if retry:
        step["retry"] = dict(retry, initial=seconds(retry["initial"]), max=seconds(retry["max"]))
    if compensate:
        step["compensate"] = "rollback"
    return step


def approval(step_id, n, after=(), groups=("leads",)):
    return {"id": step_id, "type": "approval", "approvals": n, "approver_groups": list(groups),
            "depends_on": list(after)}


def apply_plan(stack, plan_id, steps, on_failure="fail"):
    """Applies the plan document (POST /api/v1/plans, as alice, a lead with deploy everywhere)."""
    document = {"id": plan_id, "on_failure": on_failure, "inputs": {"ref": {"type": "branch", "default": "main"}},
                "steps": steps}
    r = stack.request("POST", "/api/v1/plans", document, token=stack.tokens["alice"])
    assert r.status in (200, 201), r


def start(stack, plan_id, ref_name="main", who="alice", key=None):
    headers = {"Idempotency-Key": key} if key else None
    r = stack.request("POST", f"/api/v1/plans/{plan_id}/runs", {"inputs": {"ref": ref_name}, "reason": "test"},
                      token=stack.tokens[who], headers=headers)
    assert r.status in (200, 201), r
    return r.json["run_id"]


def show(stack, run, who="alice"):
    r = stack.request("GET", f"/api/v1/runs/{run}", token=stack.tokens[who])
    assert r.status == 200, r
    return r.json


def wait_run(stack, run, statuses, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = show(stack, run)
        if shown["status"] in statuses:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"run {run} is {shown['status']}: {json.dumps(shown, indent=1)}")


def wait_step(stack, run, step, statuses, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = show(stack, run)
        if shown["steps"][step]["status"] in statuses:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"run {run} step {step}: {json.dumps(shown['steps'][step])}")


def events(stack, job_id):
    return {to: at for (to, at) in stack.rows(
        "SELECT to_state, at FROM job_events WHERE job_id = ? AND event = 'transition'", job_id)}


# -- the tests ------------------------------------------------------------------------------------

def test_three_sequential_steps_across_two_projects(world):
    stack = world
    apply_plan(stack, "seq", [deploy("stage", "shop", "staging"), deploy("api", "api", "staging", after=["stage"]),
                              deploy("prod", "shop", "prod", after=["api"])])
    run = start(stack, "seq")
    done = wait_run(stack, run, {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    assert done["progress"] == 1 and done["current_steps"] == []
    jobs = [done["steps"][s]["job_id"] for s in ("stage", "api", "prod")]
    for earlier, later in zip(jobs, jobs[1:]):
        # The next step's job was created and dispatched in the transaction that ended the previous one.
        ended = events(stack, earlier)["succeeded"]
        assert events(stack, later)["dispatching"] == ended
        assert stack.rows("SELECT actor FROM job_events WHERE job_id = ? AND to_state = 'succeeded'", earlier) == \
            [("runner",)]
    assert stack.rows("SELECT p.name, e.name, j.ref FROM jobs j JOIN projects p ON p.id = j.project_id "
                      "JOIN environments e ON e.id = j.environment_id WHERE j.id IN (?, ?, ?) ORDER BY j.id",
                      *jobs) == [("shop", "staging", "refs/heads/main"), ("api", "staging", "refs/heads/main"),
                                 ("shop", "prod", "refs/heads/main")]
    actions = [a for (a,) in stack.rows("SELECT action FROM audit WHERE subject = ? ORDER BY id", f"plan_run/{run}")]
    assert actions[0] == "plan_run.start" and actions[-1] == "plan_run.succeeded"
    assert actions.count("plan_step.succeeded") == 3


def test_parallel_branches_run_at_the_same_time_and_a_skip_follows_the_rule(world):
    stack = world
    never = "inputs.ref == 'nope'"
    apply_plan(stack, "par", [
        deploy("shop", "shop", "staging", "slow-par"), deploy("api", "api", "staging", "slow-par"),
        deploy("optional", "shop", "prod", after=["shop", "api"], condition=never),
        deploy("after", "api", "prod", after=["optional"]),
    ])
    run = start(stack, "par")
    shown = wait_step(stack, run, "api", {"running"})
    assert sorted(shown["current_steps"]) == ["api", "shop"]
    done = wait_run(stack, run, {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    shop, api = (events(stack, done["steps"][s]["job_id"]) for s in ("shop", "api"))
    # Both were running at once: each started before the other ended.
    assert shop["dispatching"] == api["dispatching"]
    assert shop["running"] < api["succeeded"] and api["running"] < shop["succeeded"]
    assert done["steps"]["optional"]["status"] == "skipped"
    assert done["steps"]["optional"]["reason"] == "its condition is false: inputs.ref == 'nope'"
    assert done["steps"]["after"]["status"] == "skipped"
    assert done["steps"]["after"]["reason"] == "optional was skipped"
    assert done["steps"]["after"]["job_id"] is None


def test_compensation_undoes_newest_first_to_the_releases_before_the_run(world):
    stack = world
    for project in ("shop", "api"):
        r = stack.deploy("alice", project, "staging", "refs/heads/develop")
        assert stack.wait_for(r.json["id"], {"succeeded", "failed"}, timeout=30) == "succeeded"
    before = dict(stack.rows("SELECT p.name, r.id FROM releases r JOIN environments e ON e.id = r.environment_id "
                             "JOIN projects p ON p.id = e.project_id WHERE e.name = 'staging' AND r.live_until IS NULL"))
    apply_plan(stack, "saga", [
        deploy("shop", "shop", "staging", compensate=True),
        deploy("api", "api", "staging", after=["shop"], compensate=True),
        deploy("shop-again", "shop", "staging", "release/2", after=["api"], compensate=True),
        deploy("prod", "shop", "prod", "fail-prod", after=["shop-again"]),
    ], on_failure="compensate")
    run = start(stack, "saga")
    done = wait_run(stack, run, {"compensated", "compensation_failed", "failed"}, timeout=90)
    assert done["status"] == "compensated", json.dumps(done, indent=1)
    assert done["steps"]["prod"]["status"] == "failed" and done["steps"]["prod"]["cause"] == "failed"
    rollbacks = {s: done["steps"][s]["compensation_job_id"] for s in ("shop-again", "api")}
    assert all(rollbacks.values()), done
    # Newest first: shop-again's rollback (of shop/staging) before api's; shop changed nothing more.
    assert rollbacks["shop-again"] < rollbacks["api"]
    assert done["steps"]["shop"]["compensation"] == "unchanged"
    targets = dict(stack.rows("SELECT id, to_release FROM jobs WHERE id IN (?, ?)", *rollbacks.values()))
    assert targets[rollbacks["shop-again"]] == before["shop"]
    assert targets[rollbacks["api"]] == before["api"]
    for job_id in rollbacks.values():
        assert stack.rows("SELECT kind, state, ref FROM jobs WHERE id = ?", job_id) == \
            [("rollback", "succeeded", "refs/heads/develop")]
    live = dict(stack.rows("SELECT p.name, r.ref FROM releases r JOIN environments e ON e.id = r.environment_id "
                           "JOIN projects p ON p.id = e.project_id WHERE e.name = 'staging' AND r.live_until IS NULL"))
    assert live == {"shop": "refs/heads/develop", "api": "refs/heads/develop"}


def test_pause_then_retry_only_the_failed_step_with_a_two_of_three_approval(world):
    stack = world
    apply_plan(stack, "gate", [
        deploy("stage", "api", "staging"), approval("approve", 2, after=["stage"]),
        deploy("prod", "api", "prod", after=["approve"]),
    ], on_failure="pause")
    run = start(stack, "gate", who="carol")
    wait_step(stack, run, "approve", {"running"})

    def vote(who, decision="approve"):
        return stack.request("POST", f"/api/v1/runs/{run}/steps/approve/approvals",
                             {"decision": decision, "comment": f"{who} says {decision}"}, token=stack.tokens[who])

    before = stack.snapshot()
    r = vote("carol")
    assert r.status == 403 and r.json["type"].endswith("/policy-denied"), r
    assert stack.snapshot() == before
    assert vote("alice", "reject").status == 201
    assert show(stack, run)["status"] == "paused"
    stage_job = show(stack, run)["steps"]["stage"]["job_id"]
    r = stack.request("POST", f"/api/v1/runs/{run}/steps/approve/retry", token=stack.tokens["carol"])
    assert r.status == 200 and r.json["status"] == "running", r
    assert vote("bob").json["approvals"] == 1
    r = vote("dana")
    assert r.json["approvals"] == 2 and r.json["step_status"] == "succeeded", r
    done = wait_run(stack, run, {"succeeded", "failed", "paused"})
    assert done["status"] == "succeeded", done
    assert done["steps"]["stage"]["job_id"] == stage_job and done["steps"]["stage"]["attempts"] == 1
    assert done["steps"]["approve"]["attempts"] == 2
    assert [v["by"] for v in done["steps"]["approve"]["votes"]] == ["alice", "bob", "dana"]
    assert stack.rows("SELECT count(*) FROM jobs j JOIN environments e ON e.id = j.environment_id "
                      "WHERE j.id >= ? AND e.name = 'staging' AND j.kind = 'deploy'", stage_job) == [(1,)]


def test_a_timed_out_step_is_retried_with_backoff(world):
    stack = world
    retry = {"max_attempts": 2, "backoff": "fixed", "initial": 5, "max": 5, "on": ["timed_out"]}
    apply_plan(stack, "timeout", [deploy("slow", "shop", "prod", "slow-deploy", timeout=30, retry=retry)])
    run = start(stack, "timeout")
    first = wait_step(stack, run, "slow", {"running"})["steps"]["slow"]["job_id"]
    stack.wait_for(first, {"running"})
    out = stack.sweep_once(45).stdout
    assert f"run {run} step slow timed out" in out, out
    shown = show(stack, run)["steps"]["slow"]
    assert shown["status"] == "retrying" and shown["cause"] == "timed_out", shown
    assert stack.wait_for(first, {"cancelled"}) == "cancelled"
    out = stack.sweep_once(51).stdout
    assert f"run {run} step slow retried (attempt 2)" in out, out
    done = wait_run(stack, run, {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    assert done["steps"]["slow"]["attempts"] == 2 and done["steps"]["slow"]["job_id"] != first
    [detail] = stack.rows("SELECT detail FROM audit WHERE action = 'plan_step.retry' AND subject = ?", f"plan_run/{run}")
    assert json.loads(detail[0])["in_seconds"] == 5


def test_two_runs_over_the_same_environments_both_finish(world):
    stack = world
    apply_plan(stack, "twin", [deploy("a", "shop", "staging"), deploy("b", "api", "staging"),
                               deploy("c", "shop", "prod", after=["a", "b"])])
    runs = [start(stack, "twin"), start(stack, "twin", "develop")]
    for run in runs:
        assert wait_run(stack, run, {"succeeded", "failed"}, timeout=90)["status"] == "succeeded"
    second = show(stack, runs[1])
    # The second run's first jobs queued behind the first run's, on each environment.
    for step in ("a", "b"):
        assert "queued" in events(stack, second["steps"][step]["job_id"])


def test_a_repeated_start_and_refusals_change_nothing(world):
    stack = world
    apply_plan(stack, "idem", [approval("only", 1)])
    run = start(stack, "idem", key="same-key")
    assert start(stack, "idem", key="same-key") == run
    before = stack.snapshot()
    for body, status in (({"inputs": {"ref": "bad ref"}}, 422), ({"inputs": {"other": "x"}}, 422), ({"x": 1}, 422)):
        r = stack.request("POST", "/api/v1/plans/idem/runs", body, token=stack.tokens["alice"])
        assert r.status == status and r.headers["Content-Type"] == "application/problem+json", r
    r = stack.request("POST", "/api/v1/plans/nothing/runs", {}, token=stack.tokens["alice"])
    assert r.status == 404, r
    r = stack.request("GET", f"/api/v1/runs/{run}")
    assert r.status == 401, r
    assert stack.snapshot() == before
    r = stack.request("POST", f"/api/v1/runs/{run}/cancel", {"reason": "done"}, token=stack.tokens["alice"])
    assert r.status == 200 and r.json["status"] == "cancelled", r
    r = stack.request("GET", "/api/v1/runs?status=cancelled", token=stack.tokens["alice"])
    assert run in [x["run_id"] for x in r.json["runs"]]


class Health(http.server.BaseHTTPRequestHandler):
    """The staging health endpoint a check step GETs: 503 for the first request, 200 after."""
    seen = []

    def do_GET(self):  # noqa: N802
        Health.seen.append(self.path)
        self.send_response(503 if len(Health.seen) == 1 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_check_step_gets_the_secret_url_through_the_deliverer_until_it_answers_as_expected(world):
    stack = world
    server = http.server.HTTPServer(("127.0.0.1", HEALTH_PORT), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        check = {"id": "health", "type": "check", "timeout": "2m", "every": "1s", "for": "0s",
                 "http": {"url_secret": "shop-health", "expect_status": 200}}
        apply_plan(stack, "checked", [check, deploy("prod", "shop", "prod", after=["health"])])
        run = start(stack, "checked")
        shown = wait_step(stack, run, "health", {"running"})
        deadline = time.monotonic() + 10
        while show(stack, run)["steps"]["health"]["reason"] != "answered 503, expected 200":
            assert time.monotonic() < deadline, show(stack, run)
            time.sleep(0.05)
        assert Health.seen == [f"/health?token={HEALTH_TOKEN}"]
        out = stack.sweep_once(2).stdout
        assert f"run {run} step health checking" in out, out
        done = wait_run(stack, run, {"succeeded", "failed"})
        assert done["status"] == "succeeded", done
        assert done["steps"]["health"]["outputs"] == {"status": 200} and len(Health.seen) == 2
        stack.assert_secrets_absent([HEALTH_TOKEN, f"127.0.0.1:{HEALTH_PORT}"],
                                    ("audit", "outbox", "plan_steps", "plan_runs", "job_events"))
    finally:
        server.shutdown()
        server.server_close()


def test_sigkill_of_functions_and_the_sweep_mid_run_leaves_every_run_consistent_and_able_to_go_on(tmp_path_factory):
    """Runs started and advanced while a quarter of the functions and deliverers (and the sweep
    service, now and then) are SIGKILLed — only this stack's own processes (test_crash.Killer). A
    start that got no answer is sent again with its Idempotency-Key. Then, with the killing stopped,
    time is let pass (`draven sweep --once` a lease later, when nothing moves): every run ends, and
    every step agrees with its job."""
    from test_crash import Killer, proc_table
    from attacks import doctor

    retry = {"max_attempts": 4, "backoff": "fixed", "initial": 1, "max": 1,
             "on": ["timed_out", "dispatch_failed"]}
    wait = {"id": "soak", "type": "wait", "duration": "1s", "depends_on": ["a", "b"]}
    with plans_stack(tmp_path_factory, sweep_every="1s") as stack:
        apply_plan(stack, "kill", [
            deploy("a", "shop", "staging", retry=retry), deploy("b", "api", "staging", retry=retry), wait,
            deploy("c", "shop", "prod", after=["soak"], retry=retry),
            deploy("d", "api", "prod", after=["soak"], retry=retry),
        ])
        killer = Killer(stack)
        kt = threading.Thread(target=killer.run)
        kt.start()
        runs, answers = [], []
        try:
            for n in range(6):
                body = {"inputs": {"ref": f"kill-{n}"}, "reason": "under fire"}
                for _ in range(20):
                    r = stack.request("POST", "/api/v1/plans/kill/runs", body, token=stack.tokens["alice"],
                                      headers={"Idempotency-Key": f"kill-{n}"})
                    answers.append(r.status)
                    if r.status in (200, 201):
                        runs.append(r.json["run_id"])
                        break
                    assert r.status == 502, r
                time.sleep(1.5)
            time.sleep(4)
        finally:
            killer.stop.set()
            kt.join()
        if killer.sweep_pid() not in proc_table():
            killer.restart_sweep()
        assert len(runs) == 6 and len(set(runs)) == 6, answers
        assert stack.rows("SELECT count(*) FROM plan_runs")[0][0] == 6

        deadline = time.monotonic() + 150
        last, still = None, 0
        while time.monotonic() < deadline:
            state = stack.rows("SELECT id, status, progressed_at FROM plan_runs ORDER BY id")
            if all(s not in ("running", "compensating") for (_, s, _) in state):
                break
            still = still + 1 if state == last else 0
            last = state
            if still >= 30:  # nothing moved for ~3 s: let a lease's worth of time pass
                stack.sweep_once(400)
                still = 0
            time.sleep(0.1)
        statuses = dict((i, s) for (i, s, _) in stack.rows("SELECT id, status, progressed_at FROM plan_runs"))
        assert set(statuses.values()) == {"succeeded"}, (statuses, dict(killer.kills))

        # Every step agrees with its job; each run's steps all ended.
        for (run, step, status, job) in stack.rows("SELECT run_id, step_id, status, job_id FROM plan_steps"):
            assert status == "succeeded", (run, step, status)
            if step != "soak":
                assert stack.rows("SELECT state FROM jobs WHERE id = ?", job) == [("succeeded",)], (run, step)
        # No plan job left open, and no lock held.
        assert stack.rows("SELECT count(*) FROM jobs WHERE state NOT IN "
                          "('succeeded', 'failed', 'timed_out', 'cancelled', 'rejected', 'expired')")[0][0] == 0
        assert stack.rows("SELECT count(*) FROM locks WHERE job_id IS NOT NULL")[0][0] == 0
        report = doctor(stack)
        assert report.returncode == 0, report.stdout + report.stderr
        assert sum(killer.kills.values()) >= 3, dict(killer.kills)
        print("kills:", dict(killer.kills), "answers:", answers)


def push(stack, ref, delivery):
    """A signed GitHub push of `ref` to acme/shop (the real push payload, its ref and head changed)."""
    event = json.loads((ROOT / "events" / "github" / "push.json").read_text())
    event.update(ref=ref, after="ab" * 20, deleted=False)
    event["repository"]["full_name"] = "acme/shop"
    body = json.dumps(event).encode()
    return stack.request("POST", "/hooks/github", body, headers={
        "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + hmac.new(SECRETS["hook"].encode(), body, hashlib.sha256).hexdigest()})


def test_a_tag_push_starts_its_plan_once(world):
    """A push of a tag the plan's trigger matches starts one run, requested by the trigger's run_as,
    with the tag as its input; the same delivery again starts nothing; other refs start nothing."""
    stack = world
    document = {"id": "on-tag", "inputs": {"ref": {"type": "tag", "pattern": "v*"}},
                "triggers": [{"on": "push", "project": "shop", "tag": "v*", "run_as": "carol"}],
                "steps": [deploy("stage", "shop", "tagged")]}
    assert stack.request("POST", "/api/v1/plans", document, token=stack.tokens["alice"]).status == 201
    runs = lambda: stack.rows("SELECT id FROM plan_runs WHERE plan_id = 'on-tag'")

    r = push(stack, "refs/tags/v2.0.0", "tag-push-1")
    assert r.status == 200 and r.json["status"] == "applied", r
    (run,) = r.json["plan_runs"]
    again = push(stack, "refs/tags/v2.0.0", "tag-push-1")  # GitHub's redelivery keeps the delivery id
    assert again.status == 200 and again.json["status"] == "duplicate", again
    for ref, delivery in (("refs/heads/main", "branch-push"), ("refs/tags/release-1", "other-tag")):
        r = push(stack, ref, delivery)
        assert r.status == 200 and "plan_runs" not in r.json, r
    assert runs() == [(run,)]
    assert stack.rows("SELECT count(*) FROM audit WHERE action = 'plan_run.refused' AND subject = 'plan/on-tag'") \
        == [(0,)]

    done = wait_run(stack, run, {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    job = done["steps"]["stage"]["job_id"]
    assert stack.rows("SELECT j.ref, p.handle FROM jobs j JOIN people p ON p.id = j.requested_by WHERE j.id = ?",
                      job) == [("refs/tags/v2.0.0", "carol")]
    (actor, detail), = stack.rows("SELECT actor, detail FROM audit WHERE action = 'plan_run.start' "
                                  "AND json_extract(detail, '$.plan') = 'on-tag'")
    assert actor == "carol" and "tag-push-1" in json.loads(detail)["reason"]


def test_a_push_a_plan_cannot_start_with_is_refused_alone_and_audited(world):
    """Two plans watch v* tags; the push's name does not match one's input pattern: that one is
    refused (audited, answered), the other starts, and the push is still recorded once."""
    stack = world
    for plan_id, pattern in (("tag-any", "v*"), ("tag-nines", "v9*")):
        document = {"id": plan_id, "inputs": {"ref": {"type": "tag", "pattern": pattern}},
                    "triggers": [{"on": "push", "project": "shop", "tag": "v*", "run_as": "bob"}],
                    "steps": [{"id": "pause", "type": "wait", "duration": "1s"}]}
        assert stack.request("POST", "/api/v1/plans", document, token=stack.tokens["alice"]).status == 201
    r = push(stack, "refs/tags/v3.1.0", "tag-push-2")
    assert r.status == 200, r
    started = {plan for (plan,) in stack.rows("SELECT plan_id FROM plan_runs WHERE id IN (%s)"
                                               % ",".join(str(i) for i in r.json["plan_runs"]))}
    assert "tag-any" in started and "tag-nines" not in started
    assert "v9*" in r.json["plans_refused"]["tag-nines"], r.json
    assert stack.rows("SELECT count(*) FROM plan_runs WHERE plan_id = 'tag-nines'") == [(0,)]
    (actor, detail), = stack.rows(
        "SELECT actor, detail FROM audit WHERE action = 'plan_run.refused' AND subject = 'plan/tag-nines'")
    assert actor == "bob" and json.loads(detail)["delivery"] == "tag-push-2"
    assert stack.rows("SELECT count(*) FROM deliveries WHERE delivery_id = 'tag-push-2'") == [(1,)]
