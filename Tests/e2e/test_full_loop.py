"""The full loop, for each provider: draven dispatches to a stand-in CI (infra/demo_provider.py with
infra/demo_pipeline.py) that runs the pipeline template's deploy step as the real CI would — the
runner fetched from draven's GET /runner.sh and checked against the template's pin, with the
variables draven sent — on the demo project (infra/examples/demo/deploy/run.sh), against draven
through real nginx + fcgiwrap. Nothing here plays the runner: every heartbeat and callback is the
shell runner's own.

Success ends `succeeded` and starts the queued job; a failure runs the environment's diagnostic and
rollback jobs through the runner too; a hang (heartbeats that stopped) ends `timed_out` through sweep
and the runner's late callback is refused with 409, changing nothing; a cancel stops the run."""
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, launch

sys.path.insert(0, str(ROOT / "infra"))
from demo_pipeline import Pipelines  # noqa: E402
from demo_provider import FakeProvider  # noqa: E402

SECRETS = {"token": "ghp_canaryLOOPtoken01", "runner": "canaryLOOPrunnerSecret", "api-token": "glpat-canaryLOOP02"}
PROJECTS = {"gh": "github", "gl": "gitlab", "glp": "gitlab", "bb": "bitbucket"}
# One project per template for the longer scenarios (glp is GitLab's other dispatch method, same template).
TEMPLATES = ("gh", "gl", "bb")
FAST = {"DEMO_STEP_SECONDS": "0.4", "DRAVEN_HEARTBEAT_EVERY": "1"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    ci_dir = tmp_path_factory.mktemp("ci")
    pipelines = Pipelines(project=ROOT / "infra" / "examples" / "demo", variables={"DRAVEN_URL": "set below"},
                          secret=SECRETS["runner"], machine_env=FAST, log_dir=ci_dir)
    fake = FakeProvider(pipelines=pipelines).start()
    config = (Path(__file__).parent / "draven.loop.toml").read_text().replace("@FAKE@", fake.url)
    try:
        with launch(config, people=("alice",), secrets=SECRETS) as stack:
            pipelines.variables["DRAVEN_URL"] = stack.url
            yield stack, fake, pipelines
            pipelines.wait_idle(timeout=60)
            logs = "".join(run.log() for run in pipelines.all())
            # The runner never prints its secret; nothing of draven's keeps it.
            assert SECRETS["runner"] not in logs
            stack.assert_secrets_absent(SECRETS.values(), ("audit", "job_events", "outbox", "jobs", "releases"))
    finally:
        pipelines.stop()
        fake.stop()


def job(stack, job_id):
    r = stack.request("GET", f"/api/v1/jobs/{job_id}", token=stack.tokens["alice"])
    assert r.status == 200, r
    return r.json


def deploy(stack, project, env, ref):
    r = stack.deploy("alice", project, env, ref)
    assert r.status == 201, r
    return r.json["id"]


def run_of(pipelines, provider, stack, job_id, timeout=20):
    """The stand-in CI's run for a job (found by the run id draven recorded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_id = stack.rows("SELECT run_id FROM jobs WHERE id = ?", job_id)[0][0]
        if run_id:
            number = run_id.strip("{}").split("-")[0].lstrip("0") if provider == "bitbucket" else run_id
            run = pipelines.find(provider, int(number))
            if run:
                return run
        time.sleep(0.05)
    raise AssertionError(f"no run for job {job_id}")


def ended(stack, job_id, timeout=30):
    return stack.wait_for(job_id, {"succeeded", "failed", "timed_out", "cancelled"}, timeout=timeout)


@pytest.mark.parametrize("project", PROJECTS)
def test_success_ends_succeeded_and_starts_the_queued_job(world, project):
    stack, fake, pipelines = world
    provider = PROJECTS[project]
    first = deploy(stack, project, "ok", "refs/heads/main")
    second = deploy(stack, project, "ok", "refs/heads/develop")
    assert job(stack, second)["state"] == "queued"
    assert ended(stack, first) == "succeeded", job(stack, first)
    # The lock passed on: the queued job was dispatched and ran through the runner too.
    assert ended(stack, second) == "succeeded", job(stack, second)
    for job_id, name in ((first, "main"), (second, "develop")):
        shown = job(stack, job_id)
        run = run_of(pipelines, provider, stack, job_id)
        assert run.done.wait(10) and run.conclusion == "success", run.log()
        # The runner's own report: the release id deploy/run.sh wrote, the log link from the CI's variables.
        [done] = [e for e in shown["events"] if e["to"] == "succeeded"]
        assert done["actor"] == "runner", done
        assert done["detail"]["release_id"].startswith("ok-") and done["detail"]["release_id"].endswith(f"-{name}"), done
        assert shown["log_url"] == {"github": f"https://github.example/acme/app/actions/runs/{run.id}",
                                    "gitlab": f"https://gitlab.example/{'42' if project == 'gl' else 'acme/app'}/-/jobs/{run.id}",
                                    "bitbucket": f"https://bitbucket.org/acme/app/pipelines/results/{run.id}"}[provider]
        # Heartbeats carried deploy/run.sh's progress lines.
        assert shown["progress"] and shown["progress"]["step"] in {"fetch", "build", "migrate", "switch"}, shown
        # What ran: the runner draven serves, checked against the template's pin, on the project's entrypoint.
        log = run.log()
        assert "draven-runner: job %d (deploy of refs/heads/%s to ok)" % (job_id, name) in log, log
        assert "[deploy] switch (90%)" in log and f"draven-runner: reported succeeded (200)" in log, log
    started = [e["at"] for e in job(stack, second)["events"] if e["to"] == "dispatching"]
    finished = [e["at"] for e in job(stack, first)["events"] if e["to"] == "succeeded"]
    assert started >= finished
    access = (stack.state_dir / "run" / "access.log").read_text()
    assert '"GET /runner.sh HTTP/1.1" 200' in access


@pytest.mark.parametrize("project", TEMPLATES)
def test_failure_runs_the_diagnostic_and_the_rollback_through_the_runner(world, project):
    stack, fake, pipelines = world
    provider = PROJECTS[project]
    good = deploy(stack, project, "recover", "refs/heads/main")
    assert ended(stack, good) == "succeeded"
    bad = deploy(stack, project, "recover", "refs/heads/fail-login")
    assert ended(stack, bad) == "failed", job(stack, bad)
    assert "the migration failed" in run_of(pipelines, provider, stack, bad).log()
    children = stack.rows("SELECT id, kind, ref FROM jobs WHERE parent_job_id = ? ORDER BY id", bad)
    assert [(kind, ref) for _, kind, ref in children] == [("diagnostic", "refs/heads/fail-login"),
                                                          ("rollback", "refs/heads/main")]
    for child, kind, _ in children:
        assert ended(stack, child) == "succeeded", job(stack, child)
        log = run_of(pipelines, provider, stack, child).log()
        task = {"diagnostic": "deploy:info", "rollback": "rollback"}[kind]
        assert f"draven-runner: job {child} ({task} of" in log and f"[{task}]" in log, log
    # The diagnostic's log is noted on the failed deploy; the rollback is the live release again.
    [noted] = [e for e in job(stack, bad)["events"] if e["event"] == "diagnostic"]
    assert noted["detail"]["diagnostic_job_id"] == children[0][0] and noted["detail"]["result"] == "succeeded", noted
    live = stack.request("GET", f"/api/v1/releases?project={project}&environment=recover", token=stack.tokens["alice"]).json["live"]
    assert live["job_id"] == children[1][0] and live["ref"] == "refs/heads/main"


@pytest.mark.parametrize("project", TEMPLATES)
def test_a_hang_times_out_through_sweep_and_the_late_callback_is_refused(world, project):
    stack, fake, pipelines = world
    provider = PROJECTS[project]
    good = deploy(stack, project, "hang", "refs/heads/main")
    assert ended(stack, good) == "succeeded"
    # The runner's heartbeats stop getting through after its first (DRAVEN_HEARTBEAT_EVERY: an hour), and
    # the deploy takes a while: the lease (1 min) runs out under it.
    pipelines.machine_env.update(DRAVEN_HEARTBEAT_EVERY="3600", DEMO_SLOW_STEP_SECONDS="1")
    try:
        stuck = deploy(stack, project, "hang", "refs/heads/slow-migration")
        run = run_of(pipelines, provider, stack, stuck)
    finally:
        pipelines.machine_env.update(FAST)
    deadline = time.monotonic() + 20
    while not stack.rows("SELECT heartbeat_at FROM jobs WHERE id = ?", stuck)[0][0]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stack.sweep_once(120)  # two minutes on: the lease has run out
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", stuck)[0][0] == "timed_out"
    [(rollback, kind)] = stack.rows("SELECT id, kind FROM jobs WHERE parent_job_id = ?", stuck)
    assert kind == "rollback" and ended(stack, rollback) == "succeeded"
    stack.wait_settled()
    before = stack.snapshot()
    # The stuck deploy finishes after all: its runner reports, and draven refuses it.
    assert run.done.wait(30), run.log()
    assert "draven-runner: reported succeeded (409)" in run.log(), run.log()
    stack.wait_settled()
    assert stack.snapshot() == before
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", stuck)[0][0] == "timed_out"


@pytest.mark.parametrize("project", TEMPLATES)
def test_a_cancel_stops_the_run(world, project):
    stack, fake, pipelines = world
    provider = PROJECTS[project]
    pipelines.machine_env.update(DEMO_SLOW_STEP_SECONDS="30")
    try:
        slow = deploy(stack, project, "cancel", "refs/heads/slow-rebuild")
        run = run_of(pipelines, provider, stack, slow)
    finally:
        pipelines.machine_env.update(FAST)
    deadline = time.monotonic() + 20
    while not stack.rows("SELECT heartbeat_at FROM jobs WHERE id = ?", slow)[0][0]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = stack.request("POST", f"/api/v1/jobs/{slow}/cancel", {"reason": "wrong branch"}, token=stack.tokens["alice"])
    assert r.status == 200, r
    assert job(stack, slow)["state"] == "cancelled"
    # draven asked the provider to stop the run; the stand-in stops its whole process tree.
    assert run.done.wait(20) and run.conclusion == "cancelled", run.log()
    assert stack.rows("SELECT count(*) FROM job_events WHERE job_id = ? AND actor = 'runner'", slow) == [(0,)]
