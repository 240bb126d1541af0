"""The pipeline templates (infra/pipelines/) pass their providers' own checks — actionlint, and
check-jsonschema's vendored GitHub workflow, GitLab CI and Bitbucket Pipelines schemas — and declare
exactly the inputs or variables draven sends: what draven sends is read from its real dispatches (a
deploy, then the diagnostic and the rollback its failure starts, each with a known sha) through
nginx + fcgiwrap to a fake provider. They pin the runner draven serves (GET /runner.sh).

The examples' shell scripts pass shellcheck."""
import hashlib
import hmac
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import yaml

from conftest import ROOT, assert_problem, launch

sys.path.insert(0, str(ROOT / "infra"))
from demo_provider import FakeProvider  # noqa: E402

PIPELINES = ROOT / "infra" / "pipelines"
RUNNER = ROOT / "infra" / "runner" / "draven-runner.sh"
VENV_BIN = Path(sys.executable).parent
TEMPLATES = {"github": PIPELINES / "github-deploy.yml", "gitlab": PIPELINES / "gitlab-ci.yml",
             "bitbucket": PIPELINES / "bitbucket-pipelines.yml"}
SCHEMAS = {"github": "vendor.github-workflows", "gitlab": "vendor.gitlab-ci", "bitbucket": "vendor.bitbucket-pipelines"}
SECRETS = {"token": "ghp_canaryTEMPLATES01", "runner": "canaryTEMPLATESrunner", "api-token": "glpat-canaryTPL02"}
SHA = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def tool(name):
    path = shutil.which(name, path=f"{VENV_BIN}:/usr/bin:/bin")
    assert path, f"{name} is not installed (make venv installs actionlint and check-jsonschema; make deps shellcheck)"
    return path


def test_the_github_workflow_passes_actionlint():
    # With shellcheck on PATH, actionlint also checks the `run:` script.
    done = subprocess.run([tool("actionlint"), "-shellcheck", tool("shellcheck"), str(TEMPLATES["github"])],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("provider", TEMPLATES)
def test_each_template_passes_its_providers_schema(provider):
    done = subprocess.run([tool("check-jsonschema"), "--builtin-schema", SCHEMAS[provider], str(TEMPLATES[provider])],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("script", ["examples/demo/deploy/run.sh", "examples/deployer/deploy/run.sh",
                                    "examples/kubernetes/deploy/run.sh", "pipelines/pin-runner.sh"])
def test_the_shell_scripts_pass_shellcheck(script):
    done = subprocess.run([tool("shellcheck"), str(ROOT / "infra" / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# -- what the templates declare, and what draven sends ---------------------------------------------

def declared(provider):
    doc = yaml.safe_load(TEMPLATES[provider].read_text())
    if provider == "github":
        return set((doc.get("on") or doc[True])["workflow_dispatch"]["inputs"])
    if provider == "gitlab":
        # The pipeline's declared variables: the global ones with a description (GitLab's prefilled
        # variables); a job's own (the runner pin) are the template's, not draven's.
        return {k for k, v in doc["variables"].items() if isinstance(v, dict) and "description" in v}
    [spec] = [item for item in doc["pipelines"]["custom"]["deploy"] if "variables" in item]
    return {v["name"] for v in spec["variables"]}


def sent_names(provider, request):
    body = request["body"]
    if provider == "github":
        return set(json.loads(body)["inputs"])
    if provider == "gitlab":
        if request["path"].endswith("/trigger/pipeline"):
            return {k[len("variables["):-1] for k in parse_qs(body.decode()) if k.startswith("variables[")}
        return {v["key"] for v in json.loads(body)["variables"]}
    return {v["key"] for v in json.loads(body)["variables"]}


def dispatches(fake, project):
    prefix = {"gh": "/repos/acme/app/actions/workflows/", "gl": "/api/v4/projects/42/trigger/pipeline",
              "glp": "/api/v4/projects/acme%2Fapp/pipeline", "bb": "/2.0/repositories/acme/app/pipelines/"}[project]
    return [r for r in fake.received(prefix) if r["method"] == "POST" and not r["path"].endswith("/cancel")]


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def signed(stack, path, payload):
    body = json.dumps(payload).encode()
    ts = str(int(time.time()))
    sig = "v1=" + hmac.new(SECRETS["runner"].encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return stack.request("POST", path, body, headers={"X-Draven-Timestamp": ts, "X-Draven-Signature": sig})


def report(stack, job_id, result):
    token = stack.rows("SELECT fencing_token FROM jobs WHERE id = ?", job_id)[0][0]
    r = signed(stack, "/hooks/runner", {"job_id": job_id, "fencing_token": token, "result": result})
    assert r.status == 200, r


@pytest.fixture(scope="module")
def sent():
    """{project: [the set of names of each dispatch draven made]} for a deploy with a sha that succeeded, one
    that failed, and the diagnostic and the rollback the failure started (they name task and sha)."""
    fake = FakeProvider().start()
    config = (Path(__file__).parent / "draven.loop.toml").read_text().replace("@FAKE@", fake.url)
    out = {}
    try:
        with launch(config, people=("alice",), secrets=SECRETS) as stack:
            for project, provider in (("gh", "github"), ("gl", "gitlab"), ("glp", "gitlab"), ("bb", "bitbucket")):
                for ref, result in (("refs/heads/main", "succeeded"), ("refs/heads/fail-x", "failed")):
                    # With a trace context (W3C traceparent): every dispatch passes it on, the recovery jobs' too.
                    r = stack.deploy("alice", project, "recover", ref, sha=SHA, headers={"traceparent": TRACEPARENT})
                    assert r.status == 201, r
                    assert stack.wait_for(r.json["id"], {"running"}) == "running"
                    report(stack, r.json["id"], result)
                children = stack.rows("SELECT id, kind FROM jobs WHERE parent_job_id = ? ORDER BY id", r.json["id"])
                assert [kind for _, kind in children] == ["diagnostic", "rollback"]
                for child, _ in children:
                    assert stack.wait_for(child, {"running"}) == "running"
                    report(stack, child, "succeeded")
                stack.wait_settled()
                out[project] = (provider, [sent_names(provider, d) for d in dispatches(fake, project)])
    finally:
        fake.stop()
    return out


@pytest.mark.parametrize("project", ["gh", "gl", "glp", "bb"])
def test_each_template_declares_exactly_what_draven_sends(sent, project):
    provider, each = sent[project]
    assert len(each) == 4, each  # two deploys, a diagnostic, a rollback
    union = set().union(*each)
    assert union == declared(provider), (
        f"{TEMPLATES[provider].name} declares {sorted(declared(provider))}; draven sends {sorted(union)}")
    # The rollback and the diagnostic name the task and the commit; a deploy's request stays without them.
    task, sha = ("task", "sha") if provider == "github" else ("DRAVEN_TASK", "DRAVEN_SHA")
    assert [task in names for names in each] == [False, False, True, True]
    assert [sha in names for names in each] == [False, False, True, True]


def test_the_github_step_passes_every_input_to_the_runner():
    doc = yaml.safe_load(TEMPLATES["github"].read_text())
    [step] = [s for s in doc["jobs"]["deploy"]["steps"] if "run" in s]
    used = {m for v in step["env"].values() for m in re.findall(r"inputs\.([a-z_]+)", str(v))}
    assert used == declared("github")
    assert step["env"]["DRAVEN_RUNNER_SECRET"] == "${{ secrets.DRAVEN_RUNNER_SECRET }}"


# -- the runner they fetch -----------------------------------------------------------------------

def pins():
    out = {}
    for provider, path in TEMPLATES.items():
        found = re.findall(r"DRAVEN_RUNNER_SHA256(?::\s*\"?|=)([0-9a-f]{64})", path.read_text())
        assert len(found) == 1, (path, found)
        out[provider] = found[0]
    return out


def test_the_templates_pin_the_runner_draven_ships():
    shipped = hashlib.sha256(RUNNER.read_bytes()).hexdigest()
    for provider, pin in pins().items():
        assert pin == shipped, (f"{TEMPLATES[provider].name} pins runner {pin}, infra/runner/draven-runner.sh is "
                                f"{shipped}: review the runner's change, then run infra/pipelines/pin-runner.sh")


def test_get_runner_sh_serves_the_installed_runner_with_its_version_and_checksum():
    config = (Path(__file__).parent / "draven.loop.toml").read_text().replace("@FAKE@", "http://127.0.0.1:9")
    with launch(config, people=()) as stack:
        r = stack.request("GET", "/runner.sh")
        assert r.status == 200, r
        assert r.body == RUNNER.read_bytes()
        assert r.content_type == "text/x-shellscript"
        assert r.headers["Draven-Runner-SHA256"] == hashlib.sha256(r.body).hexdigest()
        assert r.headers["Draven-Runner-Version"] == re.search(rb"^# draven-runner version (\d+)$", r.body, re.M)[1].decode()
        assert r.headers["ETag"]
        again = stack.request("GET", "/runner.sh", headers={"If-None-Match": r.headers["ETag"]})
        assert again.status == 304
        assert_problem(stack.request("POST", "/runner.sh", b"x"), 405, "method-not-allowed")
        assert_problem(stack.request("GET", "/runner.sh/x"), 404, "not-found")


def test_pin_runner_rewrites_every_pin(tmp_path):
    copy = tmp_path / "pipelines"
    shutil.copytree(PIPELINES, copy)
    changed = tmp_path / "runner.sh"
    changed.write_bytes(RUNNER.read_bytes() + b"# changed\n")
    done = subprocess.run([str(copy / "pin-runner.sh"), str(changed)], capture_output=True, text=True, check=True)
    want = hashlib.sha256(changed.read_bytes()).hexdigest()
    assert want in done.stdout
    for provider, path in TEMPLATES.items():
        text = (copy / path.name).read_text()
        assert want in text and pins()[provider] not in text


# -- the stand-in CI refuses what the service would ------------------------------------------------

def stand_in(tmp_path, **templates):
    from demo_pipeline import Pipelines
    return Pipelines(project=ROOT / "infra" / "examples" / "demo", variables={"DRAVEN_URL": "http://127.0.0.1:9"},
                     secret="s", log_dir=tmp_path / "ci", templates=templates)


def test_the_stand_in_refuses_a_github_dispatch_the_workflow_does_not_declare(tmp_path):
    from demo_pipeline import Refused
    ci = stand_in(tmp_path)
    path = "/repos/acme/app/actions/workflows/deploy.yml/dispatches"
    inputs = {"job_id": "1", "env": "prod", "ref": "refs/tags/v1", "fencing_token": "3"}
    with pytest.raises(Refused) as unexpected:
        ci.plan("github", path, json.dumps({"ref": "refs/tags/v1", "inputs": dict(inputs, colour="red")}).encode(), 1)
    assert (unexpected.value.status, str(unexpected.value)) == (422, 'Unexpected inputs provided: ["colour"]')
    with pytest.raises(Refused) as missing:
        ci.plan("github", path, json.dumps({"ref": "refs/tags/v1", "inputs": {"job_id": "1"}}).encode(), 2)
    assert missing.value.status == 422 and "Required input 'env' not provided" in str(missing.value)
    run = ci.plan("github", path, json.dumps({"ref": "refs/tags/v1", "inputs": inputs}).encode(), 3)
    [_, (name, script, env)] = run.steps
    assert env["DRAVEN_TASK"] == "deploy" and env["DRAVEN_SHA"] == "" and env["DRAVEN_RUNNER_SECRET"] == "s"
    assert "$DRAVEN_URL/runner.sh" in script and run.checkout_ref == "refs/tags/v1"


def test_the_stand_in_refuses_a_gitlab_pipeline_whose_rules_leave_no_job(tmp_path):
    from demo_pipeline import Refused
    ci = stand_in(tmp_path)
    with pytest.raises(Refused) as none:
        ci.plan("gitlab", "/api/v4/projects/42/trigger/pipeline", b"token=t&ref=main&variables%5BENV%5D=prod", 1)
    assert none.value.status == 400 and "No stages / jobs" in str(none.value)


def test_the_stand_in_runs_nothing_it_does_not_understand(tmp_path):
    from demo_pipeline import Refused
    other = tmp_path / "workflow.yml"
    doc = yaml.safe_load(TEMPLATES["github"].read_text())
    doc["jobs"]["deploy"]["steps"].insert(0, {"uses": "actions/setup-node@v4"})
    other.write_text(yaml.safe_dump(doc))
    ci = stand_in(tmp_path, github=other)
    body = {"ref": "main", "inputs": {"job_id": "1", "env": "e", "ref": "refs/heads/main", "fencing_token": "1"}}
    with pytest.raises(Refused) as refused:
        ci.plan("github", "/repos/a/b/actions/workflows/deploy.yml/dispatches", json.dumps(body).encode(), 1)
    assert "cannot run the action 'actions/setup-node@v4'" in str(refused.value)
