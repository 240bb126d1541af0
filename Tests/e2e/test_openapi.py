"""draven's OpenAPI document (infra/openapi.yaml): valid OpenAPI 3.1, served by nginx, naming exactly the
routes the functions' routers and the nginx site serve, and matched by every answer a running stack gives
to what schemathesis sends it from the document (status documented, content type, schema, no 5xx)."""
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate

from conftest import OPENAPI, ROOT, assert_problem, launch

FUNCTIONS = ROOT / "Core" / "DravenFunctions"
SITE = ROOT / "infra" / "nginx" / "draven.conf.in"

# Which function each router's source file is part of. A new file with routes must be named here, so a
# route cannot be added without this test seeing it.
FUNCTION_OF_FILE = {
    "Trigger.swift": "trigger", "Status.swift": "status", "Approve.swift": "approve", "Rollback.swift": "rollback",
    "Heartbeat.swift": "heartbeat", "RunnerLog.swift": "heartbeat", "WebhookReceive.swift": "webhook-receive",
    "Plans.swift": "plans", "PlanRunRoutes.swift": "plans", "Console/Console.swift": "console",
}
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def document():
    return yaml.safe_load(OPENAPI.read_text())


def canonical(path):
    """A route as the document writes it: the routers ignore a trailing slash; nginx serves the console
    under `/ui/`, so its overview is `/ui/` there."""
    return "/ui/" if path == "/ui" else path


def router_routes():
    """{(METHOD, path): function} from every `Route("METHOD", "/path")` in the functions' sources."""
    routes = {}
    for source in sorted(FUNCTIONS.rglob("*.swift")):
        found = re.findall(r'Route\("([A-Z]+)", "([^"]+)"\)', source.read_text())
        if not found:
            continue
        name = str(source.relative_to(FUNCTIONS))
        assert name in FUNCTION_OF_FILE, f"{name} declares routes: name its function in FUNCTION_OF_FILE"
        for method, path in found:
            routes.setdefault((method, canonical(path)), set()).add(FUNCTION_OF_FILE[name])
    return routes


def nginx_locations():
    """The site's public locations, in order: (modifier, pattern, what serves it). What serves it is the
    named location its `error_page … = @function` hands off to (`$draven_root`: status or console), or
    `nginx` for a file the location serves itself (`alias`)."""
    text = SITE.read_text()
    locations = []
    for m in re.finditer(r"^    location (=|~|\^~)? ?(\S+) \{\n(.*?)^    \}", text, re.S | re.M):
        modifier, pattern, body = m.group(1) or "", m.group(2), m.group(3)
        if pattern.startswith("@") or "internal;" in body or pattern.startswith("/_draven/"):
            continue
        if modifier == "" and pattern == "/":
            continue  # the catch-all: a problem+json 404 for every path no route has
        hand_off = re.search(r"error_page 403 404 405 = (\S+);", body)
        if hand_off:
            target = hand_off.group(1)
            served = {"status", "console"} if target == "$draven_root" else {target.lstrip("@")}
        else:
            assert "alias " in body, f"location {pattern} neither hands off to a function nor serves a file"
            served = {"nginx"}
        locations.append((modifier, pattern, served))
    return locations


def nginx_route(path):
    """The location nginx picks for `path` (exact, then the longest ^~ prefix, then the first regex)."""
    locations = nginx_locations()
    for modifier, pattern, served in locations:
        if modifier == "=" and pattern == path:
            return pattern, served
    prefixes = [(p, s) for m, p, s in locations if m == "^~" and path.startswith(p)]
    if prefixes:
        return max(prefixes, key=lambda x: len(x[0]))
    for modifier, pattern, served in locations:
        if modifier == "~" and re.search(pattern, path):
            return pattern, served
    return None, set()


def sample(path):
    """A concrete path for a templated one (ids are digits, names letters)."""
    return re.sub(r"\{id\}", "7", re.sub(r"\{(\w+)\}", r"x\1", path))


def test_the_document_is_valid_openapi_3_1():
    doc = document()
    assert doc["openapi"].startswith("3.1.")
    validate(doc)  # openapi-spec-validator: the 3.1 schema and its JSON Schema dialect
    import schemathesis
    schema = schemathesis.openapi.from_path(str(OPENAPI))
    assert len(list(schema.get_all_operations())) == sum(
        1 for item in doc["paths"].values() for method in item if method in METHODS)
    # Every operation names the function (or nginx) that serves it, and every $ref resolves inside the
    # document: a client generator fetching it needs no other file.
    text = OPENAPI.read_text()
    for ref in set(re.findall(r'\$ref: "([^"]+)"', text)):
        assert ref.startswith("#/"), ref
        node = doc
        for part in ref[2:].split("/"):
            node = node[part]


def test_every_route_is_in_the_document_and_nothing_else():
    doc = document()
    documented = {}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                documented[(method.upper(), path)] = set(operation["tags"])
    routes = router_routes()
    # What nginx serves itself (no function): the files its locations `alias`.
    for modifier, pattern, served in nginx_locations():
        if served == {"nginx"}:
            assert modifier == "=", pattern
            routes[("GET", pattern)] = {"nginx"}
    missing = sorted(set(routes) - set(documented))
    extra = sorted(set(documented) - set(routes))
    assert not missing, f"routes the functions or nginx serve that the document does not describe: {missing}"
    assert not extra, f"operations in the document that no router or nginx location serves: {extra}"
    for route, functions in routes.items():
        assert documented[route] == functions, (route, documented[route], functions)


def test_nginx_sends_each_documented_path_to_the_function_its_tags_name():
    doc = document()
    used = set()
    for path, item in doc["paths"].items():
        tags = set().union(*(set(op["tags"]) for method, op in item.items() if method in METHODS))
        location, served = nginx_route(sample(path))
        assert location, f"no nginx location serves {path}"
        assert tags <= served, f"{path}: nginx sends it to {served} ({location}), the document says {tags}"
        used.add(location)
    unused = [pattern for _, pattern, _ in nginx_locations() if pattern not in used]
    assert not unused, f"nginx locations no documented path reaches: {unused}"


def test_the_allow_header_nginx_sends_lists_the_documented_methods():
    """The 405s nginx answers itself (TRACE; POST on a file it serves) carry `Allow` from the site's map."""
    text = SITE.read_text()
    body = re.search(r"^map \$request_uri \$draven_allow \{\n(.*?)^\}", text, re.S | re.M).group(1)
    entries = [(re.compile(p), allow) for p, allow in re.findall(r'^\s+"~([^"]+)"\s+"([^"]*)";', body, re.M)]
    assert entries
    for path, item in document()["paths"].items():
        methods = ", ".join(sorted(m.upper() for m in item if m in METHODS))
        for uri in (sample(path), sample(path) + "?limit=1"):
            allow = next((allow for pattern, allow in entries if pattern.search(uri)), "")
            assert allow == methods, f"nginx's Allow for {uri} is {allow!r}; the document says {methods!r}"


def test_nginx_serves_the_document_without_a_token(stack):
    reply = stack.request("GET", "/api/v1/openapi.yaml")
    assert reply.status == 200, reply
    assert reply.content_type == "application/yaml"
    assert reply.body == OPENAPI.read_bytes()
    assert yaml.safe_load(reply.body)["openapi"].startswith("3.1.")
    # Like any route, it refuses a credential in the URL before serving anything.
    assert stack.request("GET", "/api/v1/openapi.yaml?token=drv_x").status == 400


SECRETS = {"gh-token": "ghp_canaryOPENAPI01", "gh-hook": "canaryOPENAPIhook", "runner": "canaryOPENAPIrunner",
           "gl-token": "glpat-canaryOPENAPI02", "gl-hook": "canaryOPENAPIglhook", "bb-token": "canaryOPENAPIbb03",
           "bb-hook": "canaryOPENAPIbbhook"}

def test_nginx_own_405s_say_which_methods_the_route_serves(stack):
    """Regression (found by schemathesis): nginx refuses TRACE itself, and a POST to a file it serves, with
    405 problem+json; those answers carried no `Allow`, which RFC 9110 requires in a 405."""
    cases = [("TRACE", "/api/v1/deploys", "POST"), ("TRACE", "/api/v1/jobs/1/approvals", "GET, POST"),
             ("TRACE", "/ui/sign-in", "GET, POST"), ("POST", "/runner.sh", "GET"),
             ("POST", "/api/v1/openapi.yaml", "GET"), ("TRACE", "/metrics?x=1", "GET")]
    for method, path, allow in cases:
        reply = stack.request(method, path, body=b"" if method == "POST" else None)
        assert reply.status == 405, (method, path, reply)
        assert reply.content_type == "application/problem+json", reply
        assert reply.headers.get("Allow") == allow, (method, path, reply.headers.get("Allow"))
    # A function's own 405 lists its router's methods, as it did.
    assert stack.request("DELETE", "/api/v1/deploys").headers.get("Allow") == "POST"


# The stack schemathesis runs against: one person (`fuzz`) with every grant everywhere, so its token
# reaches past authentication and grants into each handler; a project with environments of each
# lock policy; deliveries off (outbox rows stay pending). openapi_hooks.py signs the webhook and runner
# requests, so generated bodies get past verification into the handlers.
FUZZ_CONFIG = textwrap.dedent("""\
    [people.fuzz]
    name = "Fuzz Tester"
    [people.other]
    name = "Other Approver"

    [groups]
    leads = ["fuzz", "other"]

    [projects.shop.integration]
    provider = "github"
    repo = "acme/shop"
    method = "workflow_dispatch"
    api_url = "http://127.0.0.1:9"
    token_secret = "gh-token"
    webhook_secret = "gh-hook"
    runner_secret = "runner"
    pipelines = { "*" = "deploy.yml" }
    [projects.shop.environments.prod]
    refs = ["tag:v*"]
    approvals = 1
    approver_groups = ["leads"]
    self_approval = true
    [projects.shop.environments.staging]
    refs = ["branch:*", "tag:v*"]
    lock = "reject"
    [projects.shop.environments.demo]
    refs = ["branch:*"]
    lock = "queue"

    [projects.gl.integration]
    provider = "gitlab"
    repo = "acme/gl"
    method = "pipeline"
    api_url = "http://127.0.0.1:9/api/v4"
    token_secret = "gl-token"
    webhook_secret = "gl-hook"
    runner_secret = "runner"
    [projects.gl.environments.demo]
    refs = ["branch:*"]

    [projects.bb.integration]
    provider = "bitbucket"
    repo = "acme/bb"
    method = "custom_pipeline"
    api_url = "http://127.0.0.1:9/2.0"
    token_secret = "bb-token"
    webhook_secret = "bb-hook"
    runner_secret = "runner"
    pipelines = { "*" = "deploy" }
    [projects.bb.environments.demo]
    refs = ["branch:*"]

    [[grants]]
    person = "fuzz"
    project = "*"
    actions = ["deploy", "approve", "rollback", "read", "metrics"]
    """)

PLAN = {"id": "release", "description": "staging then prod", "inputs": {"tag": {"type": "tag", "pattern": "v*"}},
        "steps": [{"id": "staging", "type": "deploy", "project": "shop", "environment": "staging",
                   "ref": "{{ inputs.tag }}"},
                  {"id": "approve", "type": "approval", "depends_on": ["staging"]},
                  {"id": "prod", "type": "deploy", "project": "shop", "environment": "prod", "ref": "{{ inputs.tag }}",
                   "depends_on": ["approve"]}]}


@pytest.fixture(scope="module")
def fuzz_stack():
    with launch(FUZZ_CONFIG, people=("fuzz", "other"), deliver="/bin/true", secrets=SECRETS) as s:
        token = s.tokens["fuzz"]
        # Something to find: jobs in each state the routes read, a plan and a run.
        assert s.deploy(token, "shop", "demo", "refs/heads/main").status == 201
        assert s.deploy(token, "shop", "prod", "refs/tags/v1.0.0").status == 201
        assert s.request("POST", "/api/v1/plans", PLAN, token=token).status == 201
        assert s.request("POST", "/api/v1/plans/release/runs", {"inputs": {"tag": "v1.0.0"}}, token=token).status == 201
        yield s


def test_a_signed_webhook_whose_event_is_not_an_object_is_refused(fuzz_stack):
    """Regression (found by schemathesis): a signed GitHub `workflow_run` whose body is JSON but not an object
    (a number, an array) was stored as waiting for its run (202), which it could never name. It is a 400
    malformed-request now, and changes nothing."""
    import hashlib
    import hmac
    for body in (b"1.7e16", b" [1, 2]", b'"workflow_run"', b"payload=5"):
        form = body.startswith(b"payload=")
        before = fuzz_stack.snapshot()
        signature = "sha256=" + hmac.new(SECRETS["gh-hook"].encode(), body, hashlib.sha256).hexdigest()
        reply = fuzz_stack.request(
            "POST", "/hooks/github?project=shop", body,
            headers={"X-Hub-Signature-256": signature, "X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": "d-1"},
            content_type="application/x-www-form-urlencoded" if form else "application/json")
        problem = assert_problem(reply, 400, "malformed-request")
        assert "JSON object" in problem["detail"]
        assert fuzz_stack.snapshot() == before
    # An object is read as before (no job has this run: stored for when one does).
    body = json.dumps({"action": "requested", "workflow_run": {"id": 99, "status": "queued"}}).encode()
    signature = "sha256=" + hmac.new(SECRETS["gh-hook"].encode(), body, hashlib.sha256).hexdigest()
    reply = fuzz_stack.request("POST", "/hooks/github?project=shop", body, headers={
        "X-Hub-Signature-256": signature, "X-GitHub-Event": "workflow_run", "X-GitHub-Delivery": "d-2"})
    assert reply.status == 202 and reply.json["status"] == "stored", reply


def test_schemathesis_finds_every_answer_documented(fuzz_stack, tmp_path):
    """schemathesis (examples, coverage and fuzzing phases) against the running stack: every answer's status
    is documented, its content type and body match the document, no 5xx, and schema-invalid input is refused."""
    st = Path(sys.executable).parent / "st"
    checks = ",".join([
        "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
        "response_headers_conformance", "negative_data_rejection", "unsupported_method", "allow_header_conformance",
        "ignored_auth",
    ])
    # One worker: hypothesis describes its filters with ast.parse, which CPython 3.11 can fail from two
    # threads at once ("AST constructor recursion depth mismatch", python/cpython#106905).
    run = subprocess.run(
        [str(st), "run", str(OPENAPI), "--url", fuzz_stack.url,
         "--header", f"Authorization: Bearer {fuzz_stack.tokens['fuzz']}",
         "--checks", checks, "--phases", "examples,coverage,fuzzing",
         "--max-examples", os.environ.get("OPENAPI_MAX_EXAMPLES", "15"), "--seed", "20",
         "--workers", "1", "--request-timeout", "30", "--no-color", "--output-truncate", "false",
         "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
        env=dict(os.environ, SCHEMATHESIS_HOOKS="openapi_hooks", PYTHONPATH=str(Path(__file__).parent),
                 OPENAPI_RUNNER_SECRET=SECRETS["runner"], OPENAPI_GITHUB_SECRET=SECRETS["gh-hook"],
                 OPENAPI_GITLAB_SECRET=SECRETS["gl-hook"], OPENAPI_BITBUCKET_SECRET=SECRETS["bb-hook"]))
    assert "database is locked" not in fuzz_stack.error_log()
    assert run.returncode == 0, run.stdout + run.stderr
    # The run reached the handlers: past the token (refusals after authentication are audited), and past
    # the signatures openapi_hooks.py makes (verified webhooks are recorded; signed runner requests were
    # refused for their fields or tokens, not their signatures).
    assert fuzz_stack.rows("SELECT count(*) FROM audit WHERE outcome = 'refused'")[0][0] > 50
    counts = fuzz_stack.rows("SELECT function, problem, status, count FROM refusal_counts")
    for provider in ("github", "gitlab", "bitbucket"):
        verified = fuzz_stack.rows("SELECT count(*) FROM deliveries WHERE source LIKE ?", provider + ":%")[0][0]
        assert verified > 0, (provider, counts)
    past_signature = fuzz_stack.rows(
        "SELECT DISTINCT function FROM refusal_counts WHERE problem NOT IN ('bad-signature', 'unauthenticated')")
    assert {"heartbeat", "webhook-receive"} <= {f for (f,) in past_signature}, past_signature
