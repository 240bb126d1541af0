"""The console's plans in a real browser (headless Chromium) against nginx + fcgiwrap: a plan applied
through the API, a run started from its page's form, whose deploy steps are ordinary jobs dispatched to
the stand-in CI running the real runner; the run page follows the steps to `succeeded` by itself (its
polling, no reload) while leads reject, retry and approve its approval step from their own browsers; a
person without grants sees no plan; every plan page fits 400 px."""
import pytest

from test_plan_runs import approval, apply_plan, deploy, plans_stack, show

selenium = pytest.importorskip("selenium")
from selenium.webdriver.common.by import By  # noqa: E402

from browser import chromium, raw, sign_in_with_token, wait_text, wait_url  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with plans_stack(tmp_path_factory, extra_people=("zed",)) as stack:
        apply_plan(stack, "ui-gate", [
            deploy("stage", "shop", "staging"), deploy("api", "api", "staging"),
            approval("approve", 2, after=["stage", "api"]),
            deploy("prod", "shop", "prod", after=["approve"]),
        ], on_failure="pause")
        yield stack


def card(driver, step):
    return f"article[data-step='{step}']"


def press(driver, css):
    driver.find_element(By.CSS_SELECTOR, css).click()


def fits(driver, path):
    width, inner = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert inner == 400 and width <= 400, (path, width, inner)  # no horizontal scrolling


def test_start_from_the_form_and_watch_the_run_through_a_rejection_a_retry_and_two_approvals(world):
    stack = world
    with chromium() as carol:  # 400 px wide
        sign_in_with_token(carol, stack, "carol")
        carol.find_element(By.LINK_TEXT, "Plans").click()
        listed = wait_text(carol, css="article[data-plan='ui-gate']", text="ui-gate")
        assert "4 steps: stage (deploy), api (deploy), approve (approval), prod (deploy)" in listed
        fits(carol, "/ui/plans")
        press(carol, "a[href='/ui/plans/ui-gate']")
        wait_text(carol, "Start a run")
        assert '"id": "ui-gate"' in carol.find_element(By.ID, "plan-document").text  # the canonical document
        assert "a branch name, empty for the default main" in carol.find_element(By.ID, "input-ref-help").text
        fits(carol, "/ui/plans/ui-gate")
        # A tag where the plan's input is a branch: the form again, the engine's refusal under the field.
        carol.find_element(By.ID, "input-ref").send_keys("refs/tags/v1")
        press(carol, "form[action='/ui/plans/ui-gate/runs'] button")
        wait_text(carol, css="#input-ref-error", text="must be a branch name")
        assert carol.find_element(By.ID, "input-ref").get_attribute("aria-invalid") == "true"
        field = carol.find_element(By.ID, "input-ref")
        field.clear()
        field.send_keys("feature-ui")
        carol.find_element(By.ID, "reason").send_keys("try the console")
        press(carol, "form[action='/ui/plans/ui-gate/runs'] button")
        wait_url(carol, "?done=started")
        run = int(carol.current_url.split("/ui/runs/")[1].split("?")[0])
        wait_text(carol, "You started this run.")
        assert show(stack, run, who="carol")["inputs"] == {"ref": "feature-ui"}
        carol.execute_script("window.stillThisPage = true")  # gone if the page reloads
        fits(carol, f"/ui/runs/{run}")
        graph = carol.find_element(By.CSS_SELECTOR, "svg.graph").get_attribute("aria-label")
        assert graph.startswith("Step graph: stage ") and "prod pending" in graph

        # The page follows the parallel deploy steps to the approval by itself (stage, api: real jobs).
        for step in ("stage", "api"):
            text = wait_text(carol, css=card(carol, step), text="succeeded", timeout=60)
            job = show(stack, run, who="carol")["steps"][step]["job_id"]
            assert f"job {job}" in text
            assert carol.find_element(By.CSS_SELECTOR, f"{card(carol, step)} a[href='/ui/jobs/{job}']")
        wait_text(carol, css=card(carol, "approve"), text="running")
        assert "You may not vote: who started the run cannot approve its steps" in \
            carol.find_element(By.CSS_SELECTOR, card(carol, "approve")).text

        with chromium() as alice:
            sign_in_with_token(alice, stack, "alice")
            alice.get(f"{stack.url}/ui/runs/{run}")
            alice.find_element(By.ID, f"comment-{run}-approve").send_keys("not today")
            press(alice, f"{card(alice, 'approve')} button[value=reject]")
            wait_text(alice, "You rejected step approve.")
            assert show(stack, run)["status"] == "paused"
            why = wait_text(alice, css=card(alice, "approve"), text="failed")
            assert "rejected by alice: not today" in why
            press(alice, f"form[action='/ui/runs/{run}/steps/approve/retry'] button")
            wait_text(alice, "You retried step approve.")
            mine = wait_text(alice, css=card(alice, "approve"), text="running")
            assert "You may not vote: you already voted (reject) on approve" in mine
        # carol's page, meanwhile, showed the pause and the retry without a reload.
        wait_text(carol, css="#run-status", text="running")
        wait_text(carol, css=card(carol, "approve"), text="0 of 2 approvals: none yet; rejected by alice")

        with chromium() as bob:
            sign_in_with_token(bob, stack, "bob")
            bob.get(f"{stack.url}/ui/runs/{run}")
            assert "1 more approval needed after yours" in bob.find_element(By.CSS_SELECTOR, card(bob, "approve")).text
            press(bob, f"{card(bob, 'approve')} button[value=approve]")
            wait_text(bob, "You approved step approve.")
            assert "1 of 2 approvals: bob" in bob.find_element(By.CSS_SELECTOR, card(bob, "approve")).text
        r = stack.request("POST", f"/api/v1/runs/{run}/steps/approve/approvals", {"decision": "approve"},
                          token=stack.tokens["dana"])
        assert r.status == 201 and r.json["step_status"] == "succeeded", r

        wait_text(carol, css="#run-status", text="succeeded", timeout=60)
        assert "4 of 4 steps ended (100 %)" in carol.find_element(By.ID, "run-progress").text
        assert carol.execute_script("return window.stillThisPage") is True  # followed by polling alone
        assert "You may not cancel run: the run has ended (succeeded)" in carol.find_element(By.TAG_NAME, "main").text

    done = show(stack, run)
    assert done["status"] == "succeeded"
    assert [(v["by"], v["decision"]) for v in done["steps"]["approve"]["votes"]] == [
        ("alice", "reject"), ("bob", "approve"), ("dana", "approve")]
    assert done["steps"]["approve"]["attempts"] == 2 and done["steps"]["stage"]["attempts"] == 1
    vias = stack.rows("SELECT action, detail FROM audit WHERE subject = ? AND action IN ('plan_run.start', "
                      "'plan_step.vote', 'plan_step.retry_requested') ORDER BY id", f"plan_run/{run}")
    assert [a for a, _ in vias] == ["plan_run.start", "plan_step.vote", "plan_step.retry_requested", "plan_step.vote",
                                   "plan_step.vote"]
    assert ['"via":"console"' in d for _, d in vias] == [True, True, True, True, False], vias  # dana: the API


def test_a_person_without_grants_sees_no_plan_and_no_run(world):
    stack = world
    r = stack.request("POST", "/api/v1/plans/ui-gate/runs", {"inputs": {"ref": "main"}}, token=stack.tokens["alice"])
    assert r.status == 201, r
    run = r.json["run_id"]
    with chromium() as zed:
        sign_in_with_token(zed, stack, "zed")
        zed.find_element(By.LINK_TEXT, "Plans").click()
        wait_text(zed, "You may read no plan")
        assert "ui-gate" not in zed.find_element(By.TAG_NAME, "main").text
        fits(zed, "/ui/plans")
        for path, missing in [("/ui/plans/ui-gate", "/ui/plans/no-such-plan"), (f"/ui/runs/{run}", "/ui/runs/99999")]:
            said = []
            for p in (path, missing):  # the same answer as for one that does not exist
                zed.get(stack.url + p)
                wait_text(zed, "Not found")
                said.append(zed.find_element(By.TAG_NAME, "main").text.replace(p.rsplit("/", 1)[1], "ID"))
            assert said[0] == said[1] and "approve" not in said[0], said
    # Without a session: to the sign-in page.
    status, headers, _ = raw(stack, "GET", f"/ui/runs/{run}")
    assert status == 303 and headers["location"] == "/ui/sign-in"
    r = stack.request("POST", f"/api/v1/runs/{run}/cancel", {"reason": "cleanup"}, token=stack.tokens["alice"])
    assert r.status == 200 and r.json["status"] == "cancelled", r
