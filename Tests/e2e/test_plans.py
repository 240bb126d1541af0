"""Deploy plans through nginx + fcgiwrap (the `plans` function): apply, read, an unchanged
re-apply, a version conflict, a forbidden apply, every invalid plan of Tests/plans/invalid.json
refused with 422 naming its key and the store unchanged; the CLI's `plan apply|list|show` and
`draven apply` with [[plans]]."""
import json
import os
import subprocess

import pytest

from conftest import BIN_DIR, ROOT, assert_problem

INVALID = json.loads((ROOT / "Tests" / "plans" / "invalid.json").read_text())

PLAN = {
    "id": "promote-shop", "description": "staging, soak, approve, prod",
    "inputs": {"ref": {"type": "tag", "pattern": "v*"}},
    "steps": [
        {"id": "stage", "type": "deploy", "project": "shop", "environment": "staging", "ref": "${inputs.ref}",
         "timeout": "30m", "compensate": "rollback",
         "retry": {"max_attempts": 3, "initial": "30s", "max": "10m", "on": ["timed_out", "dispatch_failed"]}},
        {"id": "soak", "type": "wait", "duration": "600s", "depends_on": ["stage"]},
        {"id": "approve", "type": "approval", "approvals": 2, "approver_groups": ["leads"], "depends_on": ["soak"]},
        {"id": "prod", "type": "deploy", "project": "shop", "environment": "prod", "ref": "${inputs.ref}",
         "depends_on": ["approve"], "condition": "steps.stage.result=='succeeded'", "compensate": "rollback"},
    ],
    "on_failure": "compensate",
}


def post(stack, document, who="alice"):
    return stack.request("POST", "/api/v1/plans", document, token=stack.tokens[who])


def get(stack, path, who="alice"):
    return stack.request("GET", path, token=stack.tokens[who])


def test_apply_read_reapply_and_conflict(stack):
    created = post(stack, PLAN)
    assert created.status == 201, created
    answer = created.json
    assert created.headers["Location"] == "/api/v1/plans/promote-shop?version=1"
    assert answer["id"] == "promote-shop" and answer["version"] == 1 and answer["applied_by"] == "alice"
    document = answer["document"]
    # Normalized: defaults filled in, durations and conditions in their canonical text.
    assert document["version"] == 1 and document["triggers"] == []
    assert document["steps"][1] == {"id": "soak", "type": "wait", "depends_on": ["stage"], "duration": "10m"}
    assert document["steps"][0]["retry"]["backoff"] == "exponential"
    assert document["steps"][3]["condition"] == "steps.stage.result == 'succeeded'"
    assert get(stack, "/api/v1/plans/promote-shop").json == answer
    assert stack.rows("SELECT count(*) FROM audit WHERE action = 'plan.apply' AND subject = 'plan/promote-shop'") == [(1,)]

    # The same plan again, as sent or as GET answered it: a no-op that keeps version 1.
    before = stack.snapshot()
    for again in (PLAN, document):
        same = post(stack, again)
        assert same.status == 200 and same.json == answer, same
    assert stack.snapshot() == before

    changed = dict(PLAN, description="staging, a longer soak, prod",
                   steps=[dict(PLAN["steps"][0])] + [dict(PLAN["steps"][1], duration="1h")] + PLAN["steps"][2:])
    two = post(stack, dict(changed, version=1))  # edited from version 1
    assert two.status == 201 and two.json["version"] == 2, two
    assert get(stack, "/api/v1/plans/promote-shop?version=1").json == answer
    assert get(stack, "/api/v1/plans/promote-shop").json["document"]["steps"][1]["duration"] == "1h"

    before = stack.snapshot()
    refusals = stack.refusals()
    stale = post(stack, dict(PLAN, version=1, description="edited from an old copy"))
    problem = assert_problem(stale, 409, "conflict")
    assert "is at version 2" in problem["detail"]
    assert stack.snapshot() == before and stack.refusals() == refusals + 1

    listed = get(stack, "/api/v1/plans").json["plans"]
    mine = [p for p in listed if p["id"] == "promote-shop"]
    assert mine and mine[0]["version"] == 2 and mine[0]["steps"] == 4


def test_forbidden_apply_and_unreadable_plan(stack):
    prod_only = {"id": "prod-only", "steps": [dict(PLAN["steps"][3], depends_on=[], condition=None)],
                 "inputs": PLAN["inputs"]}
    assert post(stack, prod_only).status == 201
    # Reading needs a read grant on one of the plan's environments: staging is carol's.
    assert get(stack, "/api/v1/plans/promote-shop", who="carol").status == 200
    before = stack.snapshot()
    # carol may deploy to shop/demo and shop/staging only: not a plan that deploys to prod.
    problem = assert_problem(post(stack, dict(PLAN, id="carols"), who="carol"), 403, "forbidden")
    assert "prod" in problem["detail"]
    # Nor may she read one: answered as a plan that does not exist.
    assert_problem(get(stack, "/api/v1/plans/prod-only", who="carol"), 404, "not-found")
    assert_problem(get(stack, "/api/v1/plans/nothing-here", who="carol"), 404, "not-found")
    assert "prod-only" not in [p["id"] for p in get(stack, "/api/v1/plans", who="carol").json["plans"]]
    assert_problem(stack.request("POST", "/api/v1/plans", PLAN), 401, "unauthenticated")
    assert_problem(stack.request("DELETE", "/api/v1/plans/prod-only", token=stack.tokens["alice"]), 405,
                   "method-not-allowed")
    assert stack.snapshot() == before


@pytest.mark.parametrize("case", INVALID, ids=[f"{c['pointer']} {c['reason']}" for c in INVALID])
def test_every_invalid_plan_is_refused_naming_the_key(stack, case):
    before = stack.snapshot()
    refusals = stack.refusals()
    problem = assert_problem(post(stack, case["plan"]), 422, "invalid-field")
    assert problem["pointer"] == case["pointer"], problem
    assert problem["detail"].startswith(case["pointer"] + ": ") and case["reason"] in problem["detail"], problem
    assert stack.snapshot() == before and stack.refusals() == refusals + 1


def test_malformed_bodies(stack):
    before = stack.snapshot()
    for body in (b"[1]", b"{\"id\": \"p\", \"id\": \"q\", \"steps\": []}", b"{"):
        assert_problem(stack.request("POST", "/api/v1/plans", body, token=stack.tokens["alice"]), 400,
                       "malformed-request")
    assert stack.snapshot() == before


# -- the CLI --------------------------------------------------------------------------------------

def cli(stack, *args, who="alice"):
    env = dict(os.environ, DRAVEN_API=stack.url, DRAVEN_TOKEN=stack.tokens[who])
    return subprocess.run([str(BIN_DIR / "draven"), *args], env=env, capture_output=True, text=True, timeout=60)


def test_cli_plan_apply_list_show(stack, tmp_path):
    path = tmp_path / "demo-plan.json"
    plan = {"id": "demo-cli", "description": "demo then a pause", "steps": [
        {"id": "demo", "type": "deploy", "project": "shop", "environment": "demo", "ref": "develop"},
        {"id": "pause", "type": "wait", "duration": "5m", "depends_on": ["demo"]}]}
    path.write_text(json.dumps(plan))
    first = cli(stack, "plan", "apply", str(path), who="carol")
    assert first.returncode == 0 and first.stdout == "plan demo-cli: applied as version 1\n", first
    again = cli(stack, "plan", "apply", str(path), who="carol")
    assert again.returncode == 0 and again.stdout == "plan demo-cli: unchanged (version 1)\n", again
    path.write_text(json.dumps(dict(plan, description="demo then a longer pause")))
    assert cli(stack, "plan", "apply", str(path), "--json", who="carol").returncode == 0

    shown = cli(stack, "plan", "show", "demo-cli", "--version", "1", who="carol")
    assert shown.returncode == 0, shown
    lines = shown.stdout.splitlines()
    assert lines[0] == "plan demo-cli version 1" and lines[1] == "demo then a pause"
    assert any(line.split()[:3] == ["demo", "deploy", "shop/demo"] for line in lines)
    assert any(line.split()[:4] == ["pause", "wait", "5m", "demo"] for line in lines)
    latest = json.loads(cli(stack, "plan", "show", "demo-cli", "--json", who="carol").stdout)
    assert latest["version"] == 2 and latest["document"]["description"] == "demo then a longer pause"

    listed = cli(stack, "plan", "list", who="carol")
    assert listed.returncode == 0
    row = [line.split() for line in listed.stdout.splitlines() if line.startswith("demo-cli ")]
    assert row and row[0][1:4] == ["2", "2", "carol"], listed.stdout
    as_json = json.loads(cli(stack, "plan", "list", "--json", who="carol").stdout)
    assert "demo-cli" in [p["id"] for p in as_json["plans"]]

    # Refusals name the key and exit 1; nothing is applied.
    path.write_text(json.dumps(dict(plan, steps=plan["steps"] + [{"id": "late", "type": "wait", "duration": "5"}])))
    before = stack.snapshot()
    bad = cli(stack, "plan", "apply", str(path), who="carol")
    assert bad.returncode == 1 and "/steps/2/duration: must be a duration" in bad.stderr and "(422)" in bad.stderr
    missing = cli(stack, "plan", "show", "no-such-plan", who="carol")
    assert missing.returncode == 1 and "(404)" in missing.stderr
    assert stack.snapshot() == before


def test_completion_knows_the_plan_commands():
    out = subprocess.run([str(BIN_DIR / "draven"), "--generate-completion-script", "bash"], capture_output=True,
                         text=True, check=True).stdout
    assert "plan" in out and "apply list show" in out.replace("'", "")


# -- draven apply with [[plans]] ----------------------------------------------------------------

CONFIG = """
[people.alice]
[projects.shop.environments.demo]
refs = ["branch:develop"]
[[grants]]
person = "alice"
project = "shop"
actions = ["deploy", "read"]

[[plans]]
file = "plans/demo.json"

[[plans]]
id = "inline-demo"
[[plans.steps]]
id = "demo"
type = "deploy"
project = "shop"
environment = "demo"
ref = "develop"
"""


def draven(state, *args):
    return subprocess.run([str(BIN_DIR / "draven"), *args, "--state-dir", str(state)], capture_output=True, text=True)


def test_draven_apply_applies_the_configurations_plans(tmp_path):
    state = tmp_path / "state"
    assert draven(state, "init").returncode == 0
    (tmp_path / "plans").mkdir()
    plan = {"id": "file-demo", "steps": [{"id": "d", "type": "deploy", "project": "shop", "environment": "demo",
                                          "ref": "develop"}]}
    (tmp_path / "plans" / "demo.json").write_text(json.dumps(plan))
    config = tmp_path / "draven.toml"
    config.write_text(CONFIG)
    done = draven(state, "apply", "-f", str(config))
    assert done.returncode == 0, done.stderr
    assert "plan file-demo: applied as version 1" in done.stdout and "plan inline-demo: applied as version 1" in done.stdout
    again = draven(state, "apply", "-f", str(config))
    assert "plan file-demo: unchanged (version 1)" in again.stdout

    # A plan naming what the configuration does not have: nothing applied, the key named.
    (tmp_path / "plans" / "demo.json").write_text(json.dumps(dict(plan, steps=[dict(plan["steps"][0], environment="qa")])))
    import sqlite3
    def versions():
        with sqlite3.connect(state / "draven.db") as c:
            return c.execute("SELECT (SELECT count(*) FROM config_versions), (SELECT count(*) FROM plans)").fetchone()
    kept = versions()
    bad = draven(state, "apply", "-f", str(config))
    assert bad.returncode == 2
    assert f"{config}: plans[0] (plans/demo.json)/steps/0/environment: names no environment of project shop (qa)" in bad.stderr
    assert versions() == kept, "neither the configuration nor any plan was applied"

    # An inline plan is checked with the configuration (dry run included).
    config.write_text(CONFIG.replace('ref = "develop"', 'ref = "develop"\ndepends_on = ["nope"]'))
    dry = draven(state, "apply", "-f", str(config), "--dry-run")
    assert dry.returncode == 2
    assert "plans[1]/steps/0/depends_on/0: names no step of the plan (nope)" in dry.stderr
