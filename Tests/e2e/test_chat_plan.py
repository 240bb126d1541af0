"""`plan run PLAN [key=value…] [-- reason]` from Slack, Teams and Mattermost, through real nginx +
fcgiwrap, signed as each platform signs (the stack and helpers of test_chat_deploy.py): the linked
person's grants decide, as for POST /api/v1/plans/{id}/runs; the run's first step is an ordinary job
dispatched after the answer; a resent request starts nothing; refusals are replies that change
nothing else."""
import json
import time

import pytest

from conftest import assert_problem
from test_chat_deploy import DISPATCHES, PLATFORMS, ask, world  # noqa: F401 (world: the chat stack, a fixture)


@pytest.fixture(scope="module")
def plan(world):  # noqa: F811
    stack, _ = world
    document = {"id": "chat-ship", "description": "from chat", "inputs": {"ref": {"type": "branch"}},
                "steps": [{"id": "ship", "type": "deploy", "project": "shop", "environment": "chat",
                           "ref": "${inputs.ref}"}]}
    r = stack.request("POST", "/api/v1/plans", document, token=stack.tokens["alice"])
    assert r.status in (200, 201), r
    return stack


def runs(stack):
    return stack.rows("SELECT id, reason FROM plan_runs WHERE plan_id = 'chat-ship' ORDER BY id")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_linked_person_starts_a_run_from_chat(plan, world, platform):  # noqa: F811
    stack, fake = world
    before = runs(stack)
    started = time.monotonic()
    text, public, again = ask(stack, platform, "alice", f"plan run chat-ship ref={platform}-plan -- ship the cart")
    took = time.monotonic() - started
    assert took < 2.5, took  # well within Slack's and Mattermost's 3 s, Teams' 5 s
    [(run, reason)] = runs(stack)[len(before):]
    assert text == f"draven: alice started run {run} of plan chat-ship v1 — running ship", text
    assert public in (True, None)
    assert reason == "ship the cart"
    shown = stack.request("GET", f"/api/v1/runs/{run}", token=stack.tokens["bob"]).json
    assert shown["started_by"] == "alice" and shown["inputs"] == {"ref": f"{platform}-plan"}
    job = shown["steps"]["ship"]["job_id"]
    assert stack.wait_for(job, {"running"}) == "running"
    [sent] = [json.loads(r["body"]) for r in fake.received(DISPATCHES)
              if json.loads(r["body"])["inputs"]["job_id"] == str(job)]
    assert sent["ref"] == f"refs/heads/{platform}-plan"
    # Its audit records say it came from the chat.
    [(detail,)] = stack.rows("SELECT detail FROM audit WHERE action = 'plan_run.start' AND subject = ?",
                             f"plan_run/{run}")
    assert json.loads(detail)["via"] == platform
    # A resent request starts nothing: Slack's and Teams' signed request, Mattermost's trigger id.
    stack.wait_settled()
    before, refusals = stack.snapshot(), stack.refusals()
    replay = again()
    assert_problem(replay, 401, "bad-signature")
    assert stack.snapshot() == before and stack.refusals() == refusals + 1
    r = stack.request("POST", f"/api/v1/runs/{run}/cancel", {}, token=stack.tokens["alice"])
    assert r.status == 200, r


REFUSALS = [
    ("dave", "plan run chat-ship ref=main", "no grant allows you to deploy shop/chat"),
    ("carol", "plan run chat-ship ref=main", "no grant allows you to deploy shop/chat"),
    ("alice", "plan run chat-ship ref=-x", "/inputs/ref: must be a branch name"),
    ("alice", "plan run chat-ship colour=red", "/inputs/colour: plan chat-ship has no input colour"),
    ("alice", "plan run nope", "no plan nope"),
    ("alice", "plan chat-ship", "name the plan: plan run PLAN [key=value…] [-- reason]"),
]


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("who, text, says", REFUSALS)
def test_refused_chat_runs_are_replies_that_change_nothing(plan, world, platform, who, text, says):  # noqa: F811
    stack, _ = world
    stack.wait_settled()
    before, refusals = stack.snapshot(), stack.refusals()
    shown, public, _ = ask(stack, platform, who, text)
    assert shown.startswith("draven: ") and says in shown, shown
    assert public in (False, None)
    assert stack.snapshot() == before
    assert stack.refusals() == refusals + 1
