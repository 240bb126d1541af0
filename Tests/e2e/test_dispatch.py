"""Dispatch through the outbox to a fake provider on 127.0.0.1, through real nginx + fcgiwrap."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from conftest import BIN_DIR, ROOT, launch

sys.path.insert(0, str(ROOT / "infra"))
from demo_provider import FakeProvider  # noqa: E402

SECRETS = {
    "gh-token": "ghp_canary0GITHUB0aa11bb22cc33",
    "gl-trigger-token": "glptt-canary0TRIGGER0dd44ee55",
    "gl-token": "glpat-canary0GITLAB0ff66gg77",
    "bb-token": "ATCTT-canary0BITBUCKET0hh88",
}


@pytest.fixture(scope="module")
def fake():
    f = FakeProvider().start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def stack(fake):
    config = (Path(__file__).parent / "draven.dispatch.toml").read_text().replace("@FAKE@", fake.url)
    with launch(config, people=("alice",), secrets=SECRETS) as s:
        yield s
        # No secret may appear in any log, in the store's readable tables, or in the secrets file.
        s.assert_secrets_absent(SECRETS.values(), ("audit", "job_events", "outbox", "jobs"), store=True)




def deploy(stack, project, env, ref):
    r = stack.deploy("alice", project, env, ref)
    assert r.status == 201 and r.json["state"] == "dispatching", r
    return r.json




def for_job(fake, prefix, job_id):
    out = []
    for r in fake.received(prefix):
        text = r["body"].decode()
        if f'"job_id":"{job_id}"' in text or f'"value":"{job_id}"' in text or f"variables%5BJOB_ID%5D={job_id}&" in text:
            out.append(r)
    return out


def held_dispatch(fake, job_id):
    """Waits until the provider has the job's dispatch (it may still be holding it); returns it."""
    deadline = time.monotonic() + 10
    while not for_job(fake, "/repos/", job_id):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    [dispatch] = for_job(fake, "/repos/", job_id)
    return dispatch


def test_github_exact_request_and_running_with_run_id(stack, fake):
    job = deploy(stack, "ghapp", "ok", "refs/heads/main")
    assert stack.wait_for(job["id"], {"running", "failed"}) == "running"
    [req] = for_job(fake, "/repos/acme/app/actions/workflows/deploy.yml/dispatches", job["id"])
    assert req["method"] == "POST"
    h = req["headers"]
    assert h["Authorization"] == "Bearer " + SECRETS["gh-token"]
    assert h["Accept"] == "application/vnd.github+json"
    assert h["X-GitHub-Api-Version"] == "2022-11-28"
    assert h["Content-Type"] == "application/json"
    assert h["User-Agent"].startswith("draven/")
    assert json.loads(req["body"]) == {
        "ref": "refs/heads/main",
        "inputs": {"job_id": str(job["id"]), "env": "ok", "ref": "refs/heads/main", "fencing_token": str(job["fencing_token"])},
        "return_run_details": True,
    }
    status = stack.request("GET", f"/api/v1/jobs/{job['id']}", token=stack.tokens["alice"]).json
    run_id = stack.rows("SELECT run_id, run_url FROM jobs WHERE id = ?", job["id"])[0]
    assert status["run_id"] == run_id[0] and run_id[0].isdigit()
    assert run_id[1].startswith("https://github.example/acme/app/actions/runs/")
    assert [(e["from"], e["to"]) for e in status["events"]][-1] == ("dispatching", "running")
    assert stack.rows("SELECT state, attempts FROM outbox WHERE job_id = ?", job["id"]) == [("delivered", 1)]


def test_gitlab_trigger_token_goes_in_the_body(stack, fake):
    job = deploy(stack, "gltrig", "staging", "refs/heads/main")
    assert stack.wait_for(job["id"], {"running", "failed"}) == "running"
    [req] = for_job(fake, "/api/v4/projects/42/trigger/pipeline", job["id"])
    assert req["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in req["headers"] and "PRIVATE-TOKEN" not in req["headers"]
    form = parse_qs(req["body"].decode())
    assert form == {"token": [SECRETS["gl-trigger-token"]], "ref": ["main"], "variables[JOB_ID]": [str(job["id"])],
                    "variables[ENV]": ["staging"], "variables[REF]": ["refs/heads/main"],
                    "variables[DRAVEN_FENCING_TOKEN]": [str(job["fencing_token"])]}
    assert stack.rows("SELECT run_url FROM jobs WHERE id = ?", job["id"])[0][0].startswith("https://gitlab.example/")


def test_gitlab_pipeline_api_with_project_token(stack, fake):
    job = deploy(stack, "glpipe", "staging", "refs/heads/release/1.2")
    assert stack.wait_for(job["id"], {"running", "failed"}) == "running"
    [req] = for_job(fake, "/api/v4/projects/acme%2Fapp/pipeline", job["id"])
    assert req["headers"]["PRIVATE-TOKEN"] == SECRETS["gl-token"]
    assert json.loads(req["body"]) == {"ref": "release/1.2", "variables": [
        {"key": "JOB_ID", "value": str(job["id"])}, {"key": "ENV", "value": "staging"},
        {"key": "REF", "value": "refs/heads/release/1.2"}, {"key": "DRAVEN_FENCING_TOKEN", "value": str(job["fencing_token"])}]}


def test_bitbucket_custom_pipeline_on_a_tag(stack, fake):
    job = deploy(stack, "bbapp", "prod", "v2.0.1")
    assert stack.wait_for(job["id"], {"running", "failed"}) == "running"
    [req] = for_job(fake, "/2.0/repositories/acme/app/pipelines/", job["id"])
    assert req["headers"]["Authorization"] == "Bearer " + SECRETS["bb-token"]
    body = json.loads(req["body"])
    assert body["target"] == {"type": "pipeline_ref_target", "ref_type": "tag", "ref_name": "v2.0.1",
                              "selector": {"type": "custom", "pattern": "deploy-prod"}}
    assert {"key": "JOB_ID", "value": str(job["id"]), "secured": False} in body["variables"]
    run_id = stack.rows("SELECT run_id FROM jobs WHERE id = ?", job["id"])[0][0]
    assert run_id.startswith("{") and run_id.endswith("}")


def test_401_fails_the_job_with_the_reason_and_frees_the_lock(stack, fake):
    fake.script("/repos/acme/app/actions/workflows/", {"status": 401, "body": {"message": "Bad credentials"}})
    job = deploy(stack, "ghapp", "denied", "refs/heads/main")
    assert stack.wait_for(job["id"], {"running", "failed"}) == "failed"
    events = stack.request("GET", f"/api/v1/jobs/{job['id']}", token=stack.tokens["alice"]).json["events"]
    assert "Bad credentials" in events[-1]["detail"]["reason"] and "401" in events[-1]["detail"]["reason"]
    assert stack.rows("""SELECT l.job_id FROM locks l JOIN environments e ON e.id = l.environment_id
                         WHERE e.name = 'denied'""") == [(None,)]
    assert stack.rows("SELECT state FROM outbox WHERE job_id = ?", job["id"]) == [("dead",)]
    assert len(for_job(fake, "/repos/", job["id"])) == 1  # a 401 is not retried


def test_503_is_retried_by_sweep_and_dispatched_exactly_once(stack, fake):
    fake.script("/repos/acme/app/actions/workflows/", {"status": 503, "body": {"message": "Service Unavailable"}})
    job = deploy(stack, "ghapp", "flaky", "refs/heads/main")
    deadline = time.monotonic() + 20
    while stack.rows("SELECT last_error FROM outbox WHERE job_id = ?", job["id"])[0][0] is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    row = stack.rows("SELECT state, attempts, next_attempt_at > strftime('%s','now'), last_error FROM outbox WHERE job_id = ?", job["id"])[0]
    assert row[:3] == ("pending", 1, 1) and "503" in row[3]
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", job["id"]) == [("dispatching",)]
    # Two sweeps at once (a service and a cron line, say): the row is claimed by one of them.
    env = dict(os.environ, DRAVEN_NOW=str(int(time.time()) + 60))  # past the backoff, within the leases
    sweeps = [subprocess.Popen([str(BIN_DIR / "draven"), "sweep", "--once", "--state-dir", str(stack.state_dir)], env=env,
                               stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=30)[0] for p in sweeps]
    assert all(p.returncode == 0 for p in sweeps)
    assert sum("1 handled" in o for o in outputs) == 1, outputs
    assert stack.wait_for(job["id"], {"running", "failed"}) == "running"
    sent = for_job(fake, "/repos/", job["id"])
    assert [r["answered"] for r in sent] == [503, 200]
    assert len({r["body"] for r in sent}) == 1  # the retry is the same request: same JOB_ID
    assert stack.sweep_once().stdout == ""  # nothing more to do
    assert len(for_job(fake, "/repos/", job["id"])) == 2


def test_a_hanging_provider_times_out_and_is_retried_without_blocking_anyone(stack, fake):
    fake.script("/repos/acme/app/actions/workflows/", {"status": 200, "delay": 4, "body": {"workflow_run_id": 1}})
    job = deploy(stack, "ghapp", "slow", "refs/heads/main")
    # The trigger has answered; the provider is still holding the dispatch.
    assert held_dispatch(fake, job["id"])["answered"] is None
    # Other requests are served meanwhile.
    assert stack.request("GET", "/api/v1/locks", token=stack.tokens["alice"]).status == 200
    deadline = time.monotonic() + 20
    while stack.rows("SELECT last_error FROM outbox WHERE job_id = ?", job["id"])[0][0] is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "timed out" in stack.rows("SELECT last_error FROM outbox WHERE job_id = ?", job["id"])[0][0].lower()
    stack.sweep_once()
    assert stack.wait_for(job["id"], {"running", "failed"}) == "running"
    assert len(for_job(fake, "/repos/", job["id"])) == 2


@pytest.fixture
def own_fake():
    """A provider of the test's own: job ids start at 1 again in a new store."""
    f = FakeProvider().start()
    yield f
    f.stop()


def test_a_dispatch_in_flight_does_not_hold_the_only_fcgiwrap_worker(own_fake):
    # fcgiwrap completes a response when the function closes stdout; the draven-deliver it execs
    # then waits on the provider outside the worker. With one worker, the next request is served
    # while the provider still holds the dispatch (infra/stack.sh runs two workers per core).
    fake = own_fake
    config = (Path(__file__).parent / "draven.dispatch.toml").read_text().replace("@FAKE@", fake.url)
    with launch(config, people=("alice",), secrets=SECRETS, children=1) as s:
        fake.script("/repos/acme/app/actions/workflows/", {"status": 200, "delay": 1.5, "body": {"workflow_run_id": 7}})
        job = deploy(s, "ghapp", "slow", "refs/heads/main")
        held_dispatch(fake, job["id"])
        assert s.request("GET", "/api/v1/locks", token=s.tokens["alice"]).status == 200
        assert held_dispatch(fake, job["id"])["answered"] is None  # the provider was still holding it
        assert s.wait_for(job["id"], {"running", "failed"}) == "running"


def test_a_missing_secret_fails_the_job_with_a_clear_reason(stack, fake):
    before = len(fake.received("/repos/acme/other"))
    job = deploy(stack, "nosecret", "prod", "refs/heads/main")
    assert stack.wait_for(job["id"], {"running", "failed"}) == "failed"
    reason = stack.rows("SELECT detail FROM job_events WHERE job_id = ? ORDER BY id DESC LIMIT 1", job["id"])[0][0]
    assert "not-in-the-store is not in the secrets store" in reason
    assert len(fake.received("/repos/acme/other")) == before  # no call was made


def test_the_sweep_service_delivers_retries(stack, fake):
    fake.script("/repos/acme/app/actions/workflows/", {"status": 502, "body": {"message": "Bad Gateway"}})
    service = subprocess.Popen([str(BIN_DIR / "draven"), "sweep", "--every", "500ms", "--state-dir", str(stack.state_dir)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        job = deploy(stack, "ghapp", "service", "refs/heads/main")
        assert stack.wait_for(job["id"], {"running", "failed"}, timeout=40) == "running"
        assert [r["answered"] for r in for_job(fake, "/repos/", job["id"])] == [502, 200]
    finally:
        service.terminate()
        service.wait(timeout=10)


def test_a_secret_sent_as_a_token_is_not_echoed(stack):
    for value in SECRETS.values():
        r = stack.request("POST", "/api/v1/deploys", {"project": "ghapp", "environment": "ok", "ref": "main"}, token=value)
        assert r.status == 401 and value.encode() not in r.body  # and the module's teardown scans logs and tables


def test_no_http_function_links_libcurl():
    for name in ["trigger", "status"]:
        out = subprocess.run(["ldd", str(BIN_DIR / name)], capture_output=True, text=True)
        assert "curl" not in out.stdout, out.stdout
    assert "libcurl" in subprocess.run(["ldd", str(BIN_DIR / "draven-deliver")], capture_output=True, text=True).stdout
