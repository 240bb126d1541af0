"""The console's flows in a real browser (headless Chromium) against nginx + fcgiwrap, with deploys
that really dispatch to the tests' fake provider (on 127.0.0.1), run, heartbeat and end: deploy from
the form and watch the job page follow the runner and the provider's webhook; two leads approve from
the inbox; cancel and roll back from the pages; what a person without a read grant sees."""
import hashlib
import hmac
import json
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, launch

selenium = pytest.importorskip("selenium")
from selenium.webdriver.common.by import By  # noqa: E402

from browser import (CSP, chromium, deploy_from_the_form, raw, session_cookie, sign_in_with_token,  # noqa: E402
                     wait_text, wait_url)

sys.path.insert(0, str(ROOT / "infra"))
from demo_provider import FakeProvider  # noqa: E402

SECRETS = {"gh-token": "ghp_canaryCONSOLE01", "gh-hook": "canaryCONSOLEhook", "runner": "canaryCONSOLErunner"}


@pytest.fixture(scope="module")
def flow():
    fake = FakeProvider().start()
    config = (Path(__file__).parent / "draven.console-flow.toml").read_text().replace("@FAKE@", fake.url)
    try:
        with launch(config, people=("alice", "bob", "erin", "carol", "olga"), secrets=SECRETS) as stack:
            yield stack
            stack.assert_secrets_absent(SECRETS.values(), ("audit", "job_events", "outbox", "jobs"), store=True)
    finally:
        fake.stop()


# -- helpers ------------------------------------------------------------------------------------

def signed(stack, path, payload):
    body = json.dumps(payload).encode()
    ts = str(int(time.time()))
    sig = "v1=" + hmac.new(SECRETS["runner"].encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return stack.request("POST", path, body, headers={"X-Draven-Timestamp": ts, "X-Draven-Signature": sig})


def token(stack, job):
    return stack.rows("SELECT fencing_token FROM jobs WHERE id = ?", job)[0][0]


def finish(stack, job, result="succeeded", **extra):
    r = signed(stack, "/hooks/runner", {"job_id": job, "fencing_token": token(stack, job), "result": result, **extra})
    assert r.status == 200, r


def github_run(stack, job, status, conclusion=None):
    """A signed GitHub workflow_run webhook about `job`'s run."""
    run_id = int(stack.rows("SELECT run_id FROM jobs WHERE id = ?", job)[0][0])
    body = json.dumps({"action": "completed" if status == "completed" else "in_progress",
                       "workflow_run": {"id": run_id, "status": status, "conclusion": conclusion,
                                        "html_url": f"https://github.example/acme/shop/actions/runs/{run_id}"},
                       "repository": {"full_name": "acme/shop"}}).encode()
    sig = "sha256=" + hmac.new(SECRETS["gh-hook"].encode(), body, hashlib.sha256).hexdigest()
    return stack.request("POST", "/hooks/github?project=shop", body, headers={
        "X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": f"c-{job}-{time.time_ns()}", "X-Hub-Signature-256": sig})


def released(stack, ref, release_id):
    """A deploy of `ref` to shop/staging that ran and succeeded: a release."""
    r = stack.deploy("alice", "shop", "staging", ref)
    assert r.status == 201, r
    job = r.json["id"]
    assert stack.wait_for(job, {"running", "failed"}) == "running"
    finish(stack, job, release_id=release_id)
    return job


def state(stack, job):
    return stack.rows("SELECT state FROM jobs WHERE id = ?", job)[0][0]


# -- tests --------------------------------------------------------------------------------------

def test_deploy_from_the_form_and_the_timeline_follows_the_runner_and_the_webhook(flow):
    evil = "<script>alert('x')</script> hotfix"
    with chromium() as driver:
        sign_in_with_token(driver, flow, "carol")
        deploy_from_the_form(driver, "shop/staging", "feature-x", evil, kind="branch")  # a tag could be named so
        wait_url(driver, "done=deployed&job=")
        job = int(driver.current_url.split("job=")[1])
        wait_text(driver, f"Deploy requested: job {job}")
        cell = wait_text(driver, css="article[data-environment='shop/staging']", text=f"job {job}")
        assert "feature-x" in cell and "by carol" in cell and evil in cell  # shown as text
        assert flow.wait_for(job, {"running", "failed"}) == "running"
        driver.find_element(By.CSS_SELECTOR, f"article[data-environment='shop/staging'] a[href='/ui/jobs/{job}']").click()
        wait_url(driver, f"/ui/jobs/{job}")
        timeline = wait_text(driver, css="ol.timeline", text="took the lock with fencing token")
        assert "carol asked to deploy refs/heads/feature-x to shop/staging" in timeline
        assert "provider run" in driver.find_element(By.TAG_NAME, "main").text or "running" in timeline
        assert evil in driver.find_element(By.TAG_NAME, "main").text
        assert [s for s in driver.find_elements(By.TAG_NAME, "script") if "alert" in (s.get_attribute("innerHTML") or "")] == []
        # The runner heartbeats: the page (polling with its ETag) shows the step without a reload.
        r = signed(flow, f"/api/v1/jobs/{job}/heartbeat",
                   {"fencing_token": token(flow, job), "progress": {"step": "migrate", "percent": 40}})
        assert r.status == 200, r
        wait_text(driver, css="ol.timeline", text="latest heartbeat: migrate · 40 %")
        assert "step migrate" in driver.find_element(By.CSS_SELECTOR, "dl.summary").text
        # The provider's webhook ends the run.
        r = github_run(flow, job, "completed", "success")
        assert r.status in (200, 202), r
        assert flow.wait_for(job, {"succeeded", "failed"}) == "succeeded"
        wait_text(driver, css="dl.summary", text="succeeded")
        assert "You may not cancel" not in driver.find_element(By.TAG_NAME, "main").text  # ended: no cancel at all
    flow.wait_settled()


def test_two_leads_approve_from_the_inbox_and_the_requester_sees_why_not(flow):
    r = flow.deploy("alice", "shop", "prod", "v1.0.0", reason="quarterly release")
    assert r.status == 201 and r.json["state"] == "awaiting_approval", r
    job = r.json["id"]
    with chromium() as driver:
        sign_in_with_token(driver, flow, "alice")
        driver.get(f"{flow.url}/ui/jobs/{job}")
        actions = wait_text(driver, css="section.actions", text="You may not approve")
        assert driver.find_elements(By.CSS_SELECTOR, "button[value=approve]") == []
        assert "own" in actions, actions  # the self-approval rule, in the API's words
        assert "0 of 2 approvals — may approve: bob, erin" in actions
        driver.get(flow.url + "/ui/approvals")
        wait_text(driver, "Nothing waits for your approval.")
    with chromium() as driver:
        sign_in_with_token(driver, flow, "bob")
        driver.find_element(By.LINK_TEXT, "Approvals").click()
        article = f"article[data-job='{job}']"
        wait_text(driver, css=article, text="quarterly release")
        driver.find_element(By.CSS_SELECTOR, f"{article} input[name=comment]").send_keys("looks good")
        driver.find_element(By.CSS_SELECTOR, f"{article} button[value=approve]").click()
        wait_text(driver, f"You approved job {job}.")
        assert driver.find_elements(By.CSS_SELECTOR, article) == []  # his part is done
        assert state(flow, job) == "awaiting_approval"
        driver.get(flow.url + "/ui/")
        wait_text(driver, css="article[data-environment='shop/prod']", text="1 of 2 approvals — may approve: erin")
    # erin approves with JavaScript off: the forms post as they are.
    with chromium(javascript=False) as driver:
        sign_in_with_token(driver, flow, "erin")
        driver.get(flow.url + "/ui/approvals")
        driver.find_element(By.CSS_SELECTOR, f"article[data-job='{job}'] button[value=approve]").click()
        wait_text(driver, f"You approved job {job}.")
        assert flow.wait_for(job, {"running", "failed"}) == "running"
        driver.get(f"{flow.url}/ui/jobs/{job}")
        text = wait_text(driver, "took the lock with fencing token")
        assert "bob approved via console — “looks good”" in text and "erin approved via console" in text, text
        assert "looks good" in text
    assert flow.rows("SELECT p.handle, a.via, a.comment FROM approvals a JOIN people p ON p.id = a.person_id "
                     "WHERE a.job_id = ? ORDER BY a.id", job) == [("bob", "console", "looks good"), ("erin", "console", "")]
    finish(flow, job, release_id="v1.0.0")
    flow.wait_settled()


def test_cancel_and_roll_back_from_the_pages(flow):
    first = released(flow, "refs/tags/v1.1.0", "v1.1.0")
    second = released(flow, "refs/tags/v1.2.0", "v1.2.0")
    r = flow.deploy("carol", "shop", "staging", "refs/heads/wip")
    assert r.status == 201, r
    wip = r.json["id"]
    assert flow.wait_for(wip, {"running", "failed"}) == "running"
    with chromium() as driver:
        sign_in_with_token(driver, flow, "carol")
        driver.get(f"{flow.url}/ui/jobs/{second}")
        actions = wait_text(driver, css="section.actions", text="You may not roll back")
        assert driver.find_elements(By.CSS_SELECTOR, f"form[action='/ui/jobs/{second}/rollback']") == []
        assert "rollback" in actions  # the grant it needs
        driver.get(f"{flow.url}/ui/jobs/{wip}")
        driver.find_element(By.ID, "cancel-reason").send_keys("wrong branch")
        driver.find_element(By.CSS_SELECTOR, f"form[action='/ui/jobs/{wip}/cancel'] button").click()
        wait_text(driver, "You cancelled this job.")
        assert state(flow, wip) == "cancelled"
        wait_text(driver, css="ol.timeline", text="running → cancelled by carol: wrong branch")
    flow.wait_settled()
    # The provider was asked to stop the run, through the outbox, after the answer.
    assert flow.rows("SELECT state FROM outbox WHERE kind = 'cancel' AND job_id = ?", wip) == [("delivered",)]
    with chromium() as driver:
        sign_in_with_token(driver, flow, "alice")
        driver.find_element(By.CSS_SELECTOR, "article[data-environment='shop/staging'] h3 a").click()
        wait_url(driver, "/ui/environments/shop/staging")
        history = wait_text(driver, css="ol.releases", text="this release is live now")
        assert history.index("v1.2.0") < history.index("v1.1.0")  # newest first
        release = flow.rows("SELECT id FROM releases WHERE job_id = ?", first)[0][0]
        driver.find_element(By.CSS_SELECTOR, f"li[data-release='{release}'] input[name=reason]").send_keys("v1.2 broke")
        driver.find_element(By.CSS_SELECTOR, f"li[data-release='{release}'] button").click()
        wait_text(driver, "Rollback requested: this is the rollback job.")
        rollback = int(driver.current_url.split("/ui/jobs/")[1].split("?")[0])
        assert flow.rows("SELECT kind, to_release, reason FROM jobs WHERE id = ?", rollback) == \
            [("rollback", release, "v1.2 broke")]
        assert flow.wait_for(rollback, {"running", "failed"}) == "running"
        finish(flow, rollback, release_id="v1.1.0")
        wait_text(driver, css="dl.summary", text="succeeded")
        # ... and from a job's page: undo the rollback (back to what was live before it).
        driver.find_element(By.CSS_SELECTOR, f"form[action='/ui/jobs/{rollback}/rollback'] button").click()
        wait_text(driver, "Rollback requested")
        again = int(driver.current_url.split("/ui/jobs/")[1].split("?")[0])
        assert again != rollback and "Started by" in driver.find_element(By.CSS_SELECTOR, "dl.summary").text
        assert flow.wait_for(again, {"running", "failed"}) == "running"
        finish(flow, again, release_id="v1.2.0")
    records = flow.rows("SELECT action, json_extract(detail, '$.via') FROM audit WHERE actor = 'alice' "
                        "AND action = 'job.create' ORDER BY id DESC LIMIT 2")
    assert records == [("job.create", "console"), ("job.create", "console")]
    flow.wait_settled()


def test_a_person_without_a_read_grant_sees_nothing_of_the_project_on_any_page(flow):
    r = flow.deploy("alice", "shop", "prod", "v9.0.0", reason="secret-reason-xyz")
    assert r.status == 201, r
    job = r.json["id"]
    with chromium() as driver:
        sign_in_with_token(driver, flow, "olga")
        cookie = {"Cookie": f"draven_session={session_cookie(driver)['value']}"}
        for path in ["/ui/", "/ui/approvals", "/ui/audit", "/ui/deploy"]:
            driver.get(flow.url + path)
            source = driver.page_source
            assert "shop" not in source and "v9.0.0" not in source and "secret-reason-xyz" not in source, path
        driver.get(flow.url + "/ui/audit?project=shop")
        assert "No record you may read matches." in wait_text(driver, "Audit trail")
        for path in [f"/ui/jobs/{job}", "/ui/environments/shop/prod", "/ui/environments/shop/nowhere"]:
            status, headers, body = raw(flow, "GET", path, headers=cookie)
            assert status == 404 and "v9.0.0" not in body and "secret-reason-xyz" not in body, (path, body)
            assert headers["content-security-policy"] == CSP
        before = flow.snapshot()
        status, _, body = raw(flow, "POST", f"/ui/jobs/{job}/cancel", body="reason=x", headers=cookie)
        assert status == 403 and "CSRF" in body  # no form of hers names the job
    assert state(flow, job) == "awaiting_approval"
    assert flow.snapshot() == before


def test_every_page_has_the_csp_and_no_cache(flow):
    with chromium() as driver:
        sign_in_with_token(driver, flow, "alice")
        cookie = {"Cookie": f"draven_session={session_cookie(driver)['value']}"}
    for path in ["/ui/jobs/1", "/ui/approvals", "/ui/environments/shop/staging", "/ui/audit", "/ui/deploy",
                 "/ui/jobs/999999"]:
        status, headers, _ = raw(flow, "GET", path, headers=cookie)
        assert status in (200, 404) and headers["content-security-policy"] == CSP, path
        assert headers["cache-control"] == "no-store" and headers["x-frame-options"] == "DENY", path


def test_pages_fit_400_px_and_work_from_the_keyboard(flow):
    from selenium.webdriver.common.keys import Keys
    r = flow.deploy("alice", "shop", "prod", "v3.0.0", reason="keyboard only")
    assert r.status == 201, r
    job = r.json["id"]
    with chromium() as driver:  # 400 px wide
        driver.get(flow.url + "/ui/sign-in")
        field = driver.find_element(By.ID, "token")
        field.send_keys(flow.tokens["bob"], Keys.ENTER)  # the form submits from the keyboard
        wait_text(driver, "Signed in as bob")
        for path in ["/ui/", f"/ui/jobs/{job}", "/ui/approvals", "/ui/environments/shop/staging", "/ui/audit",
                     "/ui/deploy"]:
            driver.get(flow.url + path)
            wait_text(driver, "Signed in as bob")
            width, inner = driver.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth]")
            assert inner == 400 and width <= 400, (path, width, inner)  # no horizontal scrolling
        # Tab from the comment field to Approve and press it: every control is reachable and operable.
        driver.get(flow.url + "/ui/approvals")
        comment = driver.find_element(By.CSS_SELECTOR, f"article[data-job='{job}'] input[name=comment]")
        comment.send_keys("via keyboard", Keys.TAB)
        focused = driver.switch_to.active_element
        assert focused.get_attribute("value") == "approve" and focused.tag_name == "button"
        focused.send_keys(Keys.ENTER)
        wait_text(driver, f"You approved job {job}.")
    assert flow.rows("SELECT comment, via FROM approvals WHERE job_id = ?", job) == [("via keyboard", "console")]
