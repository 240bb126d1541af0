"""`make screenshots`: PNGs of the console from the browser tests' data — the overview, a job page,
the approvals inbox, an environment page, the plans and a plan run's page — taken by headless Chromium against nginx + fcgiwrap
serving the release binaries, with deploys dispatched to the tests' fake provider on 127.0.0.1.

    BIN_DIR=.build-dist/bin .venv/bin/python Tests/e2e/screenshots.py Tests/e2e/screenshots
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from selenium.webdriver.common.by import By  # noqa: E402

from browser import chromium, resize, sign_in_with_token, wait_text  # noqa: E402
from conftest import ROOT, launch  # noqa: E402
from test_console_flow import SECRETS, finish, released, signed, token  # noqa: E402

sys.path.insert(0, str(ROOT / "infra"))
from demo_provider import FakeProvider  # noqa: E402


def scenario(stack):
    """A morning at acme: staging has a history and a deploy running with progress, prod waits for
    a second approval, a queued deploy waits behind the running one."""
    released(stack, "refs/tags/v1.3.0", "v1.3.0")
    released(stack, "refs/tags/v1.4.0", "v1.4.0")
    r = stack.deploy("carol", "shop", "staging", "refs/heads/checkout-redesign", reason="try the new checkout")
    running = r.json["id"]
    assert stack.wait_for(running, {"running", "failed"}) == "running"
    beat = signed(stack, f"/api/v1/jobs/{running}/heartbeat",
                  {"fencing_token": token(stack, running),
                   "progress": {"step": "migrate", "percent": 60, "message": "applying 3 of 5 migrations"}})
    assert beat.status == 200, beat
    stack.deploy("alice", "shop", "staging", "refs/heads/main", reason="nightly")  # queued behind it
    prod = stack.deploy("alice", "shop", "prod", "v1.4.0", reason="release 1.4 to customers").json["id"]
    stack.request("POST", f"/api/v1/jobs/{prod}/approvals", {"decision": "approve", "comment": "staging is green"},
                  token=stack.tokens["bob"])
    other = stack.deploy("olga", "other", "live", "refs/heads/main").json["id"]
    assert stack.wait_for(other, {"running", "failed"}) == "running"
    finish(stack, other)
    plan = {"id": "release-shop", "description": "stage, soak, approve, prod",
            "inputs": {"ref": {"type": "tag", "pattern": "v*"}},
            "steps": [{"id": "stage", "type": "deploy", "project": "shop", "environment": "staging",
                       "ref": "${inputs.ref}"},
                      {"id": "soak", "type": "wait", "duration": "10m", "depends_on": ["stage"]},
                      {"id": "approve", "type": "approval", "approvals": 1, "approver_groups": ["leads"],
                       "depends_on": ["soak"]},
                      {"id": "prod", "type": "deploy", "project": "shop", "environment": "prod",
                       "ref": "${inputs.ref}", "depends_on": ["approve"]}]}
    assert stack.request("POST", "/api/v1/plans", plan, token=stack.tokens["alice"]).status == 201
    r = stack.request("POST", "/api/v1/plans/release-shop/runs", {"inputs": {"ref": "v1.5.0"}, "reason": "1.5"},
                      token=stack.tokens["alice"])
    assert r.status == 201, r
    return running, prod, r.json["run_id"]


def main(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fake = FakeProvider().start()
    config = (Path(__file__).parent / "draven.console-flow.toml").read_text().replace("@FAKE@", fake.url)
    config += '\n[[grants]]\nperson = "erin"\nproject = "other"\nactions = ["read"]\n'
    try:
        with launch(config, people=("alice", "bob", "erin", "carol", "olga"), secrets=SECRETS) as stack:
            running, prod, run = scenario(stack)
            for name, width, dark in [("", 1280, False), ("-dark", 1280, True), ("-narrow", 400, False)]:
                with chromium(size=(width, 1000), dark=dark) as driver:
                    sign_in_with_token(driver, stack, "erin")
                    pages = [("overview", "/ui/", "shop"), ("job", f"/ui/jobs/{running}", "Timeline"),
                             ("approvals", "/ui/approvals", "Waiting for your approval"),
                             ("environment", "/ui/environments/shop/staging", "Releases"),
                             ("plans", "/ui/plans", "release-shop"), ("run", f"/ui/runs/{run}", "Actions")]
                    for page, path, text in pages:
                        if name and page in ("approvals", "environment", "plans"):
                            continue
                        driver.get(stack.url + path)
                        wait_text(driver, text)
                        height = driver.execute_script("return document.documentElement.scrollHeight")
                        resize(driver, width, min(max(height + 40, 600), 2400))
                        target = out / f"{page}{name}.png"
                        driver.find_element(By.TAG_NAME, "body").screenshot(str(target))
                        print(target)
                        resize(driver, width, 1000)
            stack.wait_settled()
    finally:
        fake.stop()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "Tests/e2e/screenshots")
