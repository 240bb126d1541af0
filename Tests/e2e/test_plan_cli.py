"""`draven plan run|status|runs|retry|cancel|explain` through real nginx + fcgiwrap, on the plans
stack of test_plan_runs.py: every deploy step an ordinary job dispatched to the stand-in CI, whose
pipeline runs the real shell runner on the demo project (branches `fail-*` fail, `slow-*` take their
time). The release `draven` binary runs with the token in $DRAVEN_TOKEN, as a person would."""
import json
import os
import subprocess

import pytest

from conftest import BIN_DIR
from test_plan_runs import apply_plan, deploy, plans_stack, show, wait_run

DRAVEN = str(BIN_DIR / "draven")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with plans_stack(tmp_path_factory) as stack:
        yield stack


def cli(stack, *args, who="alice", timeout=90):
    env = dict(os.environ, DRAVEN_API=stack.url, DRAVEN_TOKEN=stack.tokens[who])
    done = subprocess.run([DRAVEN, *args], env=env, capture_output=True, text=True, timeout=timeout)
    for token in stack.tokens.values():
        assert token not in done.stdout + done.stderr
    return done


def run_id(line):
    """`run 7: plan … is running` → 7."""
    assert line.startswith("run "), line
    return int(line.split(":")[0].split()[1])


def test_run_wait_status_and_runs(world):
    stack = world
    apply_plan(stack, "cli-seq", [deploy("stage", "shop", "staging"), deploy("prod", "shop", "prod", after=["stage"])])
    done = cli(stack, "plan", "run", "cli-seq", "ref=main", "--reason", "from the cli", "--wait", "--every", "200ms")
    assert done.returncode == 0, done
    first, last = done.stdout.splitlines()
    run = run_id(first)
    assert first == f"run {run}: plan cli-seq v1 is running — 0% (current: stage)", first
    assert last == f"run {run}: plan cli-seq v1 is succeeded", last
    # The live line (stderr, not a terminal: one line per change) followed the steps in order.
    follow = done.stderr.splitlines()
    assert f"run {run}: plan cli-seq v1 is running — 50% (current: prod)" in follow, follow
    assert follow[-1] == last
    shown = show(stack, run)
    assert shown["reason"] == "from the cli" and shown["started_by"] == "alice"

    status = cli(stack, "plan", "status", str(run))
    assert status.returncode == 0, status
    lines = status.stdout.splitlines()
    assert lines[0] == last and lines[1].startswith("started by alice, ") and lines[1].endswith(": from the cli")
    rows = {line.split()[0]: line.split() for line in lines if line.split()[:1] in (["stage"], ["prod"])}
    for step in ("stage", "prod"):
        assert rows[step][1:5] == ["deploy", "succeeded", "1", str(shown["steps"][step]["job_id"])], rows
    assert json.loads(cli(stack, "plan", "status", str(run), "--json").stdout)["steps"] == shown["steps"]

    listed = cli(stack, "plan", "runs", "--status", "succeeded")
    assert listed.returncode == 0
    row = [line.split() for line in listed.stdout.splitlines() if line.startswith(f"{run} ")]
    assert row and row[0][1:6] == ["cli-seq", "1", "succeeded", "100%", "alice"], listed.stdout
    as_json = json.loads(cli(stack, "plan", "runs", "--status", "succeeded", "--json").stdout)
    assert run in [r["run_id"] for r in as_json["runs"]]
    assert cli(stack, "plan", "runs", "--status", "running").stdout.count(f"\n{run} ") == 0


def test_a_paused_run_retried_then_cancelled(world):
    stack = world
    apply_plan(stack, "cli-pause", [deploy("stage", "shop", "staging"),
                                    deploy("bad", "api", "staging", after=["stage"])], on_failure="pause")
    done = cli(stack, "plan", "run", "cli-pause", "ref=fail-cli", "--wait", "--every", "200ms")
    assert done.returncode == 3, done  # the first step fails on a fail-* branch: paused, for a person
    last = done.stdout.splitlines()[-1]
    run = run_id(last)
    assert last.startswith(f"run {run}: plan cli-pause v1 is paused; step stage failed: job "), last
    assert last.endswith(f"; retry it with `draven plan retry {run} stage`"), last

    retried = cli(stack, "plan", "retry", str(run), "stage")
    assert retried.returncode == 0, retried
    assert retried.stdout.startswith(f"run {run}: step stage is running; run {run}: plan cli-pause v1 is running")
    again = wait_run(stack, run, {"paused"})
    assert again["steps"]["stage"]["attempts"] == 2 and again["steps"]["bad"]["status"] == "pending"

    # Refusals exit 1 with the API's reason, and change nothing.
    stack.wait_settled()
    before = stack.snapshot()
    wrong = cli(stack, "plan", "retry", str(run), "bad")
    assert wrong.returncode == 1 and "only a step that failed can be retried" in wrong.stderr, wrong
    unknown = cli(stack, "plan", "status", "999999")
    assert unknown.returncode == 1 and "no plan run 999999" in unknown.stderr and "(404)" in unknown.stderr
    bad_status = cli(stack, "plan", "runs", "--status", "sideways")
    assert bad_status.returncode == 1 and "(422)" in bad_status.stderr
    assert stack.snapshot() == before

    cancelled = cli(stack, "plan", "cancel", str(run), "--reason", "giving up")
    assert cancelled.returncode == 0 and cancelled.stdout == f"run {run}: plan cli-pause v1 is cancelled\n", cancelled
    assert show(stack, run)["detail"]["reason"] == "giving up"
    twice = cli(stack, "plan", "cancel", str(run), "--json")
    assert twice.returncode == 1 and "has already ended" in twice.stderr and twice.stdout == ""

    bad_input = cli(stack, "plan", "run", "cli-pause", "colour=red")
    assert bad_input.returncode == 1 and "/inputs/colour" in bad_input.stderr
    usage = cli(stack, "plan", "run", "cli-pause", "=main")
    assert usage.returncode == 64 and "has no key" in usage.stderr


def test_explain_predicts_a_policy_refusal_and_a_held_lock(world):
    stack = world
    # shop/prod accepts only branches (draven.plans.toml): a tag there is refused by its policy.
    document = {"id": "cli-explain", "inputs": {"ref": {"type": "string"}}, "steps": [
        {"id": "stage", "type": "deploy", "project": "shop", "environment": "staging", "ref": "main"},
        {"id": "prod", "type": "deploy", "project": "shop", "environment": "prod", "ref": "${inputs.ref}",
         "depends_on": ["stage"]},
        {"id": "soak", "type": "wait", "duration": "1m", "depends_on": ["prod"]}]}
    r = stack.request("POST", "/api/v1/plans", document, token=stack.tokens["alice"])
    assert r.status in (200, 201), r
    stack.wait_settled()
    before = stack.snapshot()
    explained = cli(stack, "plan", "explain", "cli-explain", "ref=refs/tags/v9.0.0")
    assert explained.returncode == 0, explained
    lines = explained.stdout.splitlines()
    assert lines[0] == "plan cli-explain version 1: the run would stop at prod", lines
    rows = {line.split()[0]: line for line in lines[2:]}
    assert rows["stage"].split()[:4] == ["stage", "deploy", "shop/staging", "START"], rows
    assert rows["prod"].split()[:4] == ["prod", "deploy", "shop/prod", "REFUSE"]
    assert "prod accepts only branch *; tag v9.0.0 does not match" in rows["prod"], rows["prod"]
    assert rows["soak"].split()[:3] == ["soak", "wait", "AFTER"] and "after prod" in rows["soak"]
    # A dry run creates nothing, and writes no audit record either.
    assert stack.snapshot() == before

    # Another job holds shop/staging's lock: the first step would queue behind it. (Its heartbeats
    # and log change its own rows meanwhile: those are left out of the comparison.)
    holder, _ = stack.running_job("shop", "staging", ref="refs/heads/slow-holder")
    stack.wait_settled()
    before = quiet(stack)
    answer = json.loads(cli(stack, "plan", "explain", "cli-explain", "ref=main", "--json").stdout)
    assert answer["would"] == "start" and answer["stops_at"] == ["stage"], answer
    stage, prod, soak = answer["steps"]
    assert stage == {"id": "stage", "type": "deploy", "would": "wait", "environment": "shop/staging", "ref": "main",
                     "why": f"its job would queue behind job {holder}, which holds the lock of shop/staging"}, stage
    assert prod["would"] == "after" and prod["after"] == "stage" and soak["after"] == "stage"
    assert quiet(stack) == before

    # Refusals exit 1 with the API's reason, and change nothing either.
    missing = cli(stack, "plan", "explain", "no-such-plan")
    assert missing.returncode == 1 and "(404)" in missing.stderr
    bad = cli(stack, "plan", "explain", "cli-explain")
    assert bad.returncode == 1 and "/inputs/ref: is required" in bad.stderr, bad
    assert quiet(stack) == before
    assert stack.request("POST", f"/api/v1/jobs/{holder}/cancel", {}, token=stack.tokens["alice"]).status == 200


def quiet(stack):
    """The store but for what a running job's heartbeats and log change (its row, its lock, its
    events and log), with the number of jobs, which a dry run must not change either."""
    tables = {name: rows for name, rows in stack.snapshot().items() if not name.startswith("job") and name != "locks"}
    return tables, stack.rows("SELECT count(*) FROM jobs")


def test_completion_knows_the_run_commands():
    out = subprocess.run([DRAVEN, "--generate-completion-script", "bash"], capture_output=True, text=True,
                         check=True).stdout.replace("'", "")
    assert "apply list show run status runs retry cancel explain" in out
