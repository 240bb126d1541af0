"""Hostile input through real nginx + fcgiwrap, on every route of the README's HTTP API table:
oversized and lying Content-Length, chunked and slow bodies, invalid UTF-8, deep nesting, NUL bytes,
traversal and non-numeric ids, SQL metacharacters in every field and query parameter, wrong methods.
Each is answered 4xx application/problem+json, changes nothing (a full dump of every table and
column before and after: only `refused` audit records may be added), and no response or log holds a
secret. Bounded: a few hundred requests, no waiting on server timeouts (well under a minute).

Errors nginx answers itself (a bad request line, lying lengths, bad chunking) are problem+json
too: the site's error pages (issue 15, defect 11) are held to the same checks."""

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attacks import (
    PEOPLE,
    SECRETS,
    all_logs,
    assert_unchanged,
    bitbucket_headers,
    config,
    doctor,
    dump_store,
    github_headers,
    gitlab_headers,
    http_bytes,
    mattermost_headers,
    raw_exchange,
    runner_headers,
    secret_values,
    secrets,
    slack_headers,
    teams_headers,
)
from conftest import ROOT, launch

sys.path.insert(0, str(ROOT / "infra"))
from demo_provider import FakeProvider  # noqa: E402

NGINX_OWN = ()  # answered by nginx itself, not a function: the same checks hold
RESPONSES = []  # every answer this module got: scanned for secrets at the end


class World:
    def __init__(self, stack, fake):
        self.stack, self.fake = stack, fake
        self.port = stack.port
        self.db_path = stack.state_dir / "draven.db"

    def send(self, data, **kwargs):
        reply = raw_exchange(self.port, data, **kwargs)
        RESPONSES.append(reply.raw)
        return reply

    def snapshot(self):
        return dump_store(self.db_path)


def settled(stack, timeout=15):
    deadline = time.monotonic() + timeout
    while stack.rows("SELECT count(*) FROM outbox WHERE state IN ('pending', 'delivering')")[0][0]:
        assert time.monotonic() < deadline, stack.rows("SELECT * FROM outbox WHERE state IN ('pending', 'delivering')")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def world():
    fake = FakeProvider().start()
    try:
        with launch(config(fake.url), people=PEOPLE, secrets=secrets(fake.url)) as stack:
            w = World(stack, fake)
            # A running job holding `busy` (lock = reject), one awaiting approval, one cancelled.
            busy = stack.deploy("alice", "app", "busy", "main")
            assert busy.status == 201, busy
            w.busy = busy.json["id"]
            assert stack.wait_for(w.busy, {"running", "failed"}) == "running"
            w.token = stack.rows("SELECT fencing_token FROM jobs WHERE id = ?", w.busy)[0][0]
            gated = stack.deploy("alice", "app", "gated", "main")
            assert gated.status == 201 and gated.json["state"] == "awaiting_approval", gated
            w.gated = gated.json["id"]
            done = stack.deploy("alice", "app", "live", "refs/heads/main")
            w.done = done.json["id"]
            assert stack.wait_for(w.done, {"running"}) == "running"
            assert stack.request("POST", f"/api/v1/jobs/{w.done}/cancel", {}, token=stack.tokens["alice"]).status == 200
            settled(stack)
            yield w
    finally:
        fake.stop()


def tok(w, who="alice"):
    return {"Authorization": "Bearer " + w.stack.tokens[who]}


def js(value):
    return json.dumps(value).encode()


# -- the routes: a request each that draven refuses for a reason of its own (so every variant
#    reaches the part of the function that reads it), with valid credentials ------------------------


class Route:
    def __init__(
        self,
        name,
        method,
        path,
        body=None,
        auth=None,
        content_type="application/json",
        fields=(),
        query=(),
        chat=False,
        limit=None,
    ):
        self.name, self.method, self.path, self.body, self.auth = name, method, path, body, auth
        self.content_type, self.fields, self.query, self.chat, self.limit = content_type, fields, query, chat, limit

    def url(self, w, job=None, query=""):
        path = self.path.replace("{id}", str(job if job is not None else self.job(w)))
        return path + (("&" if "?" in path else "?") + query if query else "")

    def job(self, w):
        return {
            "approvals": w.gated,
            "approvals-list": w.gated,
            "heartbeat": w.busy,
            "job-rollback": w.done,
            "cancel": w.done,
            "job": w.busy,
        }.get(self.name, w.busy)

    def base(self, w):
        return self.body(w) if self.body else None

    def headers(self, w, body):
        h = dict(self.auth(w, body or b"")) if self.auth else {}
        if body is not None and self.content_type:
            h["Content-Type"] = self.content_type
        return h

    def request(self, w, body=None, path=None, headers=None, method=None):
        body = self.encode(self.base(w)) if body is None and self.body else body
        h = self.headers(w, body)
        h.update(headers or {})
        return http_bytes(method or self.method, path or self.url(w), body if body is not None else b"", h)

    def encode(self, value):
        if isinstance(value, bytes) or value is None:
            return value
        if self.content_type == "application/x-www-form-urlencoded":
            return "&".join(f"{quote(k)}={quote(str(v))}" for k, v in value.items()).encode()
        return js(value)


def form(**items):
    return items


FORM = "application/x-www-form-urlencoded"
# Each chat platform's route: its path, the requester's own approval as a body, its content type and
# the fields the hostile values go into.
CHAT = {
    "slack": ("/chatops/slack", lambda w: form(user_id="UALICE", text=f"approve {w.gated}", command="/draven"),
              FORM, ("user_id", "text", "command", "payload")),
    "teams": ("/chatops/teams",
              lambda w: {"type": "message", "text": f"<at>draven</at> approve {w.gated}",
                         "from": {"aadObjectId": "aad-alice"}},
              "application/json", ("type", "text", "from")),
    "mattermost": ("/chatops/mattermost", lambda w: form(user_id="mm-alice", text=f"approve {w.gated}"),
                   FORM, ("user_id", "text")),
}


def chat_route(platform, auth, signed=False, fields=None):
    path, body, content_type, default_fields = CHAT[platform]
    return Route(platform + ("-signed" if signed else ""), "POST", path, body, auth=auth,
                 content_type=content_type, fields=fields or default_fields, chat=True)


ROUTES = [
    Route(
        "trigger",
        "POST",
        "/api/v1/deploys",
        lambda w: {"project": "app", "environment": "busy", "ref": "main", "reason": "r"},
        auth=lambda w, b: tok(w),
        fields=("project", "environment", "ref", "ref_kind", "sha", "reason"),
        limit=65536,
    ),
    Route("job", "GET", "/api/v1/jobs/{id}", auth=lambda w, b: {"Authorization": "Bearer drv_nope_nope"}),
    Route("job-log", "GET", "/api/v1/jobs/{id}/log", auth=lambda w, b: {"Authorization": "Bearer drv_nope_nope"},
          query=("after",)),
    Route(
        "jobs",
        "GET",
        "/api/v1/jobs",
        auth=lambda w, b: {"Authorization": "Bearer drv_nope_nope"},
        query=("project", "environment", "state", "limit"),
    ),
    Route("locks", "GET", "/api/v1/locks", auth=lambda w, b: {"Authorization": "Bearer drv_nope_nope"}),
    Route(
        "releases",
        "GET",
        "/api/v1/releases?project=app&environment=live",
        auth=lambda w, b: {"Authorization": "Bearer drv_nope_nope"},
        query=("project", "environment", "limit"),
    ),
    Route("metrics", "GET", "/metrics", auth=lambda w, b: {"Authorization": "Bearer drv_nope_nope"}),
    Route("dora", "GET", "/api/v1/dora", auth=lambda w, b: {"Authorization": "Bearer drv_nope_nope"},
          query=("project", "environment", "window")),
    # Webhooks: signed for real, about a repository no integration names (401 no integration).
    Route(
        "github",
        "POST",
        "/hooks/github",
        lambda w: {
            "action": "completed",
            "workflow_run": {"id": 1, "status": "completed", "conclusion": "success"},
            "repository": {"full_name": "nobody/nothing"},
        },
        auth=lambda w, b: github_headers(b),
        fields=("action", "workflow_run", "repository"),
        query=("project",),
    ),
    Route(
        "gitlab",
        "POST",
        "/hooks/gitlab",
        lambda w: {
            "object_kind": "pipeline",
            "object_attributes": {"id": 1, "status": "success"},
            "project": {"path_with_namespace": "nobody/nothing"},
        },
        auth=lambda w, b: gitlab_headers(b),
        fields=("object_kind", "object_attributes", "project"),
        query=("project",),
    ),
    Route(
        "bitbucket",
        "POST",
        "/hooks/bitbucket",
        lambda w: {"commit_status": {"state": "SUCCESSFUL", "key": "k"}, "repository": {"full_name": "nobody/nothing"}},
        auth=lambda w, b: bitbucket_headers(b),
        fields=("commit_status", "repository"),
        query=("project",),
    ),
    # The runner's callback with a fencing token that does not hold the lock (409).
    Route(
        "runner",
        "POST",
        "/hooks/runner",
        lambda w: {
            "job_id": w.busy,
            "fencing_token": w.token + 100,
            "result": "succeeded",
            "log_url": "https://ci/log",
            "release_id": "r1",
        },
        auth=lambda w, b: runner_headers(b),
        fields=("job_id", "fencing_token", "result", "log_url", "artifact_urls", "release_id"),
    ),
    # A log chunk with a fencing token that does not hold the lock (409).
    Route(
        "runner-log",
        "POST",
        "/hooks/runner/log",
        lambda w: {"job_id": w.busy, "fencing_token": w.token + 100, "seq": 1, "data": "bG9nIGxpbmUK"},
        auth=lambda w, b: runner_headers(b),
        fields=("job_id", "fencing_token", "seq", "data"),
        limit=96 * 1024,
    ),
    # The requester voting on her own deploy (403 self_approval).
    Route(
        "approvals",
        "POST",
        "/api/v1/jobs/{id}/approvals",
        lambda w: {"decision": "approve", "comment": "c"},
        auth=lambda w, b: tok(w),
        fields=("decision", "comment"),
    ),
    Route(
        "approvals-list",
        "GET",
        "/api/v1/jobs/{id}/approvals",
        auth=lambda w, b: {"Authorization": "Bearer drv_nope_nope"},
    ),
    # Chat platforms: signed for real; a verified request is answered 200 with a message for the chat
    # (README), so these bases are unsigned-looking (a stale timestamp, a wrong HMAC, a wrong token).
    chat_route("slack", lambda w, b: slack_headers(b, ts=int(time.time()) - 3600)),
    chat_route("teams", lambda w, b: teams_headers(b + b" ")),
    chat_route("mattermost", lambda w, b: {"Authorization": "Token wrong"}, fields=("user_id", "text", "token")),
    # The same, signed for real: the requester's own vote is refused in a 200 message for the chat.
    chat_route("slack", lambda w, b: slack_headers(b), signed=True),
    chat_route("teams", lambda w, b: teams_headers(b), signed=True),
    chat_route("mattermost", lambda w, b: mattermost_headers(b), signed=True),
    # A heartbeat with a fencing token that does not hold the lock (409).
    Route(
        "heartbeat",
        "POST",
        "/api/v1/jobs/{id}/heartbeat",
        lambda w: {"fencing_token": w.token + 100, "progress": {"step": "s", "percent": 5, "message": "m"}},
        auth=lambda w, b: runner_headers(b),
        fields=("fencing_token", "progress"),
        limit=4096,
    ),
    # Nothing earlier to roll back to (409); a cancelled job (409).
    Route(
        "rollbacks",
        "POST",
        "/api/v1/rollbacks",
        lambda w: {"project": "app", "environment": "live", "reason": "r"},
        auth=lambda w, b: tok(w),
        fields=("project", "environment", "to_release", "reason"),
    ),
    Route(
        "job-rollback",
        "POST",
        "/api/v1/jobs/{id}/rollback",
        lambda w: {"reason": "r"},
        auth=lambda w, b: tok(w),
        fields=("reason",),
    ),
    Route(
        "cancel",
        "POST",
        "/api/v1/jobs/{id}/cancel",
        lambda w: {"reason": "r"},
        auth=lambda w, b: tok(w),
        fields=("reason",),
    ),
]
# GET /: public, answers 200 to anyone; only its refusals are tried (wrong methods, a body).
INDEX = Route("index", "GET", "/")
BY_NAME = {r.name: r for r in ROUTES}
BODY_ROUTES = [r for r in ROUTES if r.body]
ID_ROUTES = [r for r in ROUTES if "{id}" in r.path]


def assert_refused(reply, what, chat=False):
    """4xx application/problem+json naming its status (or, for a verified chat request, the chat's 200)."""
    assert reply.status is not None, f"{what}: no answer"
    if chat and reply.status == 200:
        assert reply.content_type.startswith("application/json"), f"{what}: {reply}"
        return
    assert 400 <= reply.status < 500, f"{what}: {reply}"
    assert reply.content_type.startswith("application/problem+json"), f"{what}: {reply}"
    problem = json.loads(reply.body)
    assert problem["status"] == reply.status and problem["type"].startswith(
        "https://draven.dev/problems/"
    ), f"{what}: {problem}"


def refused_unchanged(w, data, what, chat=False, **kwargs):
    before = w.snapshot()
    reply = w.send(data, **kwargs)
    assert_refused(reply, what, chat)
    assert_unchanged(before, w.snapshot(), what)
    return reply


# -- each route's own refusal, as it is ---------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_the_base_request_is_refused_and_changes_nothing(world, route):
    refused_unchanged(world, route.request(world), route.name, chat=route.chat)


# -- bodies -------------------------------------------------------------------------------------


def deep(depth):
    return b'{"a":' * depth + b"1" + b"}" * depth


def rng_value(n):
    return ["1", 1.0, True, -1, 2**63, None][n % 6]


BODIES = {
    "invalid utf-8": lambda r, w: (
        r.encode(r.base(w)).replace(b"r", b"\xff\xfe", 1)
        if r.content_type == "application/json"
        else r.encode(r.base(w)) + b"&text=%ff%fe\xff"
    ),
    "deep nesting": lambda r, w: (
        deep(1500) if r.content_type == "application/json" else b"payload=" + quote(deep(1500)).encode()
    ),
    "deep arrays": lambda r, w: b"[" * 1900 + b"]" * 1900,
    "raw NUL": lambda r, w: r.encode(r.base(w)).replace(b"a", b"a\x00", 1),
    "escaped NUL": lambda r, w: r.encode(
        {k: (v + "\u0000x" if isinstance(v, str) else v) for k, v in r.base(w).items()}
    ),
    "not JSON": lambda r, w: b"project=app&environment=busy",
    "empty": lambda r, w: b"",
    "a JSON array": lambda r, w: b"[1,2,3]",
    "a JSON string": lambda r, w: b'"x"',
    "duplicate keys": lambda r, w: b'{"reason":"a","reason":"b"}',
    "huge numbers": lambda r, w: js({k: 1e308 for k in r.base(w)}).replace(b"1e+308", b"1e99999"),
    "big integers": lambda r, w: js({k: 10**30 for k in r.base(w)}),
    "wrong types": lambda r, w: js({k: [{"x": None}] for k in r.base(w)}),
    "truncated": lambda r, w: r.encode(r.base(w))[:-3],
    "a byte-order mark": lambda r, w: b"\xef\xbb\xbf" + r.encode(r.base(w)),
    "UTF-16": lambda r, w: json.dumps(r.base(w)).encode("utf-16"),
    "nested one past the limit": lambda r, w: b'{"a":' * 65 + b"1" + b"}" * 65,
    "numbers as strings, floats, booleans": lambda r, w: js(
        {k: rng_value(n) for n, k in enumerate(r.base(w))} if isinstance(r.base(w), dict) else {}
    ),
}


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: r.name)
@pytest.mark.parametrize("kind", BODIES)
def test_hostile_bodies_are_refused_and_change_nothing(world, route, kind):
    body = BODIES[kind](route, world)
    refused_unchanged(world, route.request(world, body=body), f"{route.name} {kind}", chat=route.chat)


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: r.name)
def test_a_wrong_content_type_is_refused(world, route):
    data = route.request(world, headers={"Content-Type": "text/plain"})
    refused_unchanged(world, data, route.name, chat=route.chat)


@pytest.mark.parametrize("route", [r for r in BODY_ROUTES if r.limit], ids=lambda r: r.name)
def test_a_body_above_the_functions_limit_is_413_before_it_is_read(world, route):
    body = js({"reason": "x" * (route.limit + 10)})
    reply = refused_unchanged(world, route.request(world, body=body), route.name)
    assert reply.status == 413


# -- Content-Length, chunking, slow bodies (raw sockets) --------------------------------------------


@pytest.mark.parametrize("route", ROUTES + [INDEX], ids=lambda r: r.name)
def test_an_oversized_content_length_is_413_without_sending_the_body(world, route):
    data = route.request(world).split(b"\r\n\r\n")[0].replace(b"Content-Length:", b"X-Old-Length:")
    data += b"\r\nContent-Length: 1099511627776\r\n\r\n"
    reply = refused_unchanged(world, data, route.name)
    assert reply.status == 413


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: r.name)
def test_a_content_length_shorter_than_the_body(world, route):
    body = route.encode(route.base(world))
    head = route.request(world, body=body).split(b"\r\n\r\n")[0]
    head = head.replace(f"Content-Length: {len(body)}".encode(), f"Content-Length: {len(body) // 2}".encode())
    refused_unchanged(world, head + b"\r\n\r\n" + body, route.name, chat=route.chat)


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: r.name)
def test_a_content_length_longer_than_the_body_then_eof(world, route):
    body = route.encode(route.base(world))
    head = route.request(world, body=body).split(b"\r\n\r\n")[0]
    head = head.replace(f"Content-Length: {len(body)}".encode(), f"Content-Length: {len(body) + 100}".encode())
    before = world.snapshot()
    reply = world.send(head + b"\r\n\r\n" + body, half_close=True, timeout=5)
    # The client went away: nginx gives up on the request (nothing, or its own 400).
    assert reply.status is None or 400 <= reply.status < 500, reply
    assert_unchanged(before, world.snapshot(), route.name)


LYING = {
    "non-numeric": b"Content-Length: abc",
    "negative": b"Content-Length: -1",
    "duplicate, different": b"Content-Length: 5\r\nContent-Length: 7",
    "with a sign": b"Content-Length: +5",
    "chunked and a length": b"Transfer-Encoding: chunked\r\nContent-Length: 5",
}


@pytest.mark.parametrize(
    "route", [BY_NAME["trigger"], BY_NAME["github"], BY_NAME["heartbeat"], BY_NAME["slack"]], ids=lambda r: r.name
)
@pytest.mark.parametrize("kind", [pytest.param(k, marks=NGINX_OWN) for k in LYING])
def test_a_malformed_content_length_is_refused(world, route, kind):
    head = route.request(world).split(b"\r\n\r\n")[0].split(b"\r\n")
    head = [line for line in head if not line.startswith(b"Content-Length:")] + [LYING[kind]]
    refused_unchanged(world, b"\r\n".join(head) + b"\r\n\r\n12345", f"{route.name} {kind}")


def chunked(body, sizes=(7, 3, 1000000)):
    out, i = b"", 0
    for n in sizes:
        piece = body[i : i + n]
        if not piece:
            break
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        i += len(piece)
    return out + b"0\r\n\r\n"


@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: r.name)
def test_a_chunked_body_is_read_like_any_other(world, route):
    body = route.encode(route.base(world))
    head = route.request(world, body=body).split(b"\r\n\r\n")[0].split(b"\r\n")
    head = [line for line in head if not line.startswith(b"Content-Length:")] + [b"Transfer-Encoding: chunked"]
    refused_unchanged(world, b"\r\n".join(head) + b"\r\n\r\n" + chunked(body), route.name, chat=route.chat)


BAD_CHUNKS = {
    "size not hex": b"zz\r\nhello\r\n0\r\n\r\n",
    "size overflow": b"ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    "no final chunk": b"5\r\nhello\r\n5\r\nworld\r\nxyz",
}


def chunked_head(route, world):
    head = route.request(world).split(b"\r\n\r\n")[0].split(b"\r\n")
    return b"\r\n".join(
        [line for line in head if not line.startswith(b"Content-Length:")] + [b"Transfer-Encoding: chunked"]
    )


@pytest.mark.parametrize("route", [BY_NAME["trigger"], BY_NAME["runner"], BY_NAME["teams"]], ids=lambda r: r.name)
@pytest.mark.parametrize("kind", [pytest.param(k, marks=NGINX_OWN) for k in BAD_CHUNKS])
def test_bad_chunking_is_refused(world, route, kind):
    refused_unchanged(world, chunked_head(route, world) + b"\r\n\r\n" + BAD_CHUNKS[kind], f"{route.name} {kind}")


@pytest.mark.parametrize("route", [BY_NAME["trigger"], BY_NAME["runner"], BY_NAME["teams"]], ids=lambda r: r.name)
def test_a_chunk_cut_short_by_eof_changes_nothing(world, route):
    before = world.snapshot()
    reply = world.send(chunked_head(route, world) + b"\r\n\r\nffff\r\nhello", half_close=True, timeout=5)
    assert reply.status is None or 400 <= reply.status < 500, reply  # the client went away: nothing, or nginx's 400
    assert_unchanged(before, world.snapshot(), route.name)


def test_slow_requests_are_answered_like_fast_ones(world):
    """Every route's request sent in four pieces 0.15 s apart (all routes at once, so it stays short)."""

    def slow(route):
        data = route.request(world)
        cut = [len(data) // 4, len(data) // 2, len(data) - 2]
        return world.send(
            [data[: cut[0]], data[cut[0] : cut[1]], data[cut[1] : cut[2]], data[cut[2] :]], pauses=(0.15,)
        )

    before = world.snapshot()
    with ThreadPoolExecutor(len(ROUTES)) as pool:
        replies = list(pool.map(slow, ROUTES))
    for route, reply in zip(ROUTES, replies):
        assert_refused(reply, route.name, route.chat)
    assert_unchanged(before, world.snapshot(), "slow requests")


# -- paths: ids, traversal, NUL, methods -------------------------------------------------------------

BAD_IDS = ["abc", "0", "-1", "1.5", "1e3", "0x10", "99999999999999999999", "00000000000000000001x", "_", "1-1", "--1"]


@pytest.mark.parametrize("route", ID_ROUTES, ids=lambda r: r.name)
@pytest.mark.parametrize("job", BAD_IDS)
def test_non_numeric_and_out_of_range_ids_are_404(world, route, job):
    headers = tok(world) if route.method == "GET" else {}
    data = route.request(world, path=route.url(world, job=job), headers=headers)
    reply = refused_unchanged(world, data, f"{route.name} {job}")
    if route.method == "GET":
        assert reply.status == 404, reply


ENCODED_IDS = [
    "%27%20OR%201%3D1",
    "1%3BDROP%20TABLE%20jobs",
    "%2e%2e",
    "%252e%252e",
    "1%2F..%2F..%2Flocks",
    pytest.param("%00", marks=NGINX_OWN),
    pytest.param("1%00", marks=NGINX_OWN),
]


@pytest.mark.parametrize("route", ID_ROUTES, ids=lambda r: r.name)
@pytest.mark.parametrize("job", ENCODED_IDS)
def test_encoded_ids_and_traversal_are_refused(world, route, job):
    """With a valid token for the quoted ids; without one for the traversal (nginx resolves it to the
    route it names, /api/v1/locks here, which is then as protected as ever)."""
    headers = {} if "%2F" in job else tok(world)
    data = route.request(world, path=route.url(world, job=job), headers=headers)
    refused_unchanged(world, data, f"{route.name} {job}")


TRAVERSALS = [
    pytest.param(b"/../../../etc/passwd", id="above the root", marks=NGINX_OWN),
    pytest.param(b"/%2e%2e/%2e%2e/etc/passwd", id="encoded above the root", marks=NGINX_OWN),
    pytest.param(b"/hooks/../api/v1/deploys", id="into the api"),
    pytest.param(b"/api/v1/jobs/1/../../locks", id="job to locks"),
    pytest.param(b"/api/v1/./jobs/./1", id="dot segments"),
    pytest.param(b"//api//v1//deploys", id="double slashes"),
    pytest.param(b"/api\\v1\\deploys", id="backslashes"),
    pytest.param(b"/api/v1/jobs/1\x00", id="raw NUL", marks=NGINX_OWN),
    pytest.param(b"/api/v1/deploys%00", id="encoded NUL", marks=NGINX_OWN),
    pytest.param(b"/draven.db", id="a state dir file"),
    pytest.param(b"/secrets/secrets.kek", id="the secrets"),
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_and_nul_paths_are_refused(world, path):
    for method in ("GET", "POST"):
        data = http_bytes(
            method,
            path,
            js({"project": "app", "environment": "busy", "ref": "main"}),
            {"Content-Type": "application/json"},
        )
        reply = refused_unchanged(world, data, f"{path!r} {method}")
        assert b"drvkek" not in reply.raw and b"SQLite format" not in reply.raw


SAME_PATH_OTHER_ROUTE = {("approvals", "GET"), ("approvals-list", "POST")}


# Each route with each method it does not serve (filtered here, so no case passes without asserting).
WRONG_METHODS = [
    (route, method)
    for route in ROUTES + [INDEX]
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    if method != route.method and (route.name, method) not in SAME_PATH_OTHER_ROUTE
]


@pytest.mark.parametrize("route,method", WRONG_METHODS, ids=[f"{r.name}-{m}" for r, m in WRONG_METHODS])
def test_wrong_methods_are_405(world, route, method):
    data = route.request(world, method=method, body=b"")
    reply = refused_unchanged(world, data, f"{method} {route.name}")
    assert reply.status == 405, reply


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"X-Evil: a\x00b", marks=NGINX_OWN),
        pytest.param(b"Authorization: Bearer a\r\nAuthorization: Bearer b", marks=NGINX_OWN),
        pytest.param(b"X-Long: " + b"a" * 40000, marks=NGINX_OWN),
        b"X-Unicode: \xff\xfe\xc0\xaf",
        b"Authorization: Bearer \xff\xfe",
        b"Authorization: Bearer drv_' OR '1'='1_x",
        b"Authorization: Basic YWxpY2U6YWxpY2U=",
    ],
)
def test_hostile_headers_are_refused(world, header):
    data = http_bytes(
        "POST",
        "/api/v1/deploys",
        js({"project": "app", "environment": "busy", "ref": "main"}),
        {"Content-Type": "application/json"},
    ).replace(b"Connection: close", b"Connection: close\r\n" + header)
    refused_unchanged(world, data, repr(header[:40]))


# -- SQL metacharacters in every field and query parameter (hypothesis, bounded) ------------------------

SQL = [
    "'",
    '"',
    ";",
    "--",
    "/*",
    "*/",
    "%",
    "_",
    "\\",
    "?1",
    ":x",
    "@x",
    "$1",
    "' OR '1'='1",
    '" OR ""="',
    "'; DROP TABLE jobs; --",
    "1 UNION SELECT hash FROM api_tokens",
    ") OR (1=1",
    "\u0000",
    "\u2028",
    "ｐｒｏｄ",
]
sql_text = st.lists(st.sampled_from(SQL) | st.text(alphabet="ab1 ", max_size=3), min_size=1, max_size=4).map("".join)
BOUNDED = settings(
    max_examples=12, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def field_routes():
    return [r for r in BODY_ROUTES if r.fields]


@pytest.mark.parametrize("route", field_routes(), ids=lambda r: r.name)
def test_sql_metacharacters_in_every_field(world, route):
    before = world.snapshot()

    @BOUNDED
    @given(field=st.sampled_from(route.fields), value=sql_text)
    def attack(field, value):
        body = dict(route.base(world))
        body[field] = value
        reply = world.send(route.request(world, body=route.encode(body)))
        assert_refused(reply, f"{route.name} {field}={value!r}", chat=route.chat)

    attack()
    assert_unchanged(before, world.snapshot(), route.name)


HEADERS_READ = [
    "Idempotency-Key",
    "X-GitHub-Delivery",
    "X-GitHub-Event",
    "X-Gitlab-Event",
    "X-Gitlab-Event-UUID",
    "X-Event-Key",
    "X-Request-UUID",
    "X-Draven-Timestamp",
    "X-Slack-Request-Timestamp",
    "Content-Type",
]


@pytest.mark.parametrize(
    "route", [BY_NAME[n] for n in ("trigger", "github", "gitlab", "bitbucket", "runner", "slack")], ids=lambda r: r.name
)
def test_sql_metacharacters_in_the_headers_draven_reads(world, route):
    """Delivery ids, event names, timestamps, the idempotency key: stored or compared, so hostile too.
    (A NUL in a header is nginx's own 400: test_hostile_headers_are_refused.)"""
    before = world.snapshot()

    @BOUNDED
    @given(name=st.sampled_from(HEADERS_READ), value=sql_text.filter(lambda v: "\u0000" not in v))
    def attack(name, value):
        data = route.request(world, headers={name: value.encode()})
        assert_refused(world.send(data), f"{route.name} {name}: {value!r}", chat=route.chat)

    attack()
    assert_unchanged(before, world.snapshot(), route.name)


ODD_QUERIES = [
    "%zz",
    "%",
    "project=%",
    "project=a&project=b&project=c",
    "&&&",
    "=x",
    "project",
    "limit=1e2",
    "limit=-1",
    "limit=99999999999999999999",
    "state=running%00",
    "project=" + "a" * 3000,
]


@pytest.mark.parametrize("route", [BY_NAME[n] for n in ("jobs", "releases", "github", "trigger")], ids=lambda r: r.name)
@pytest.mark.parametrize("query", ODD_QUERIES)
def test_odd_query_strings_are_refused_or_match_nothing(world, route, query):
    before = world.snapshot()
    reply = world.send(route.request(world, path=route.url(world, query=query)))
    assert_refused(reply, f"{route.name} ?{query[:40]}")
    if route.method == "GET":
        valid = world.send(route.request(world, path=route.url(world, query=query), headers=tok(world, "carol")))
        if valid.status == 200:  # an unknown or empty parameter is no filter: never more than carol may read
            listing = json.loads(valid.body)
            assert all(job["project"] == "app" for job in listing.get("jobs", [])), (route.name, query, listing)
        else:
            assert_refused(valid, f"{route.name} (carol) ?{query[:40]}")
    assert_unchanged(before, world.snapshot(), route.name)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_sql_metacharacters_in_query_parameters(world, route):
    """Read filters that match nothing answer 200 with nothing (GET /api/v1/jobs, /releases, with a
    valid token); every other use of a hostile parameter is refused."""
    before = world.snapshot()
    names = route.query or ("project", "id", "token")

    @BOUNDED
    @given(name=st.sampled_from(names), value=sql_text)
    def attack(name, value):
        query = f"{quote(name)}={quote(value)}"
        reply = world.send(route.request(world, path=route.url(world, query=query)))
        assert_refused(reply, f"{route.name} ?{name}={value!r}", chat=route.chat)
        if route.method == "GET" and route.query:
            valid = world.send(route.request(world, path=route.url(world, query=query), headers=tok(world, "carol")))
            if valid.status == 200:
                listing = json.loads(valid.body)
                assert listing.get("jobs", []) == [] and listing.get("releases", []) == [], (
                    route.name,
                    name,
                    value,
                    listing,
                )
            else:
                assert_refused(valid, f"{route.name} (carol) ?{name}={value!r}")

    attack()
    assert_unchanged(before, world.snapshot(), route.name)


# -- afterwards: no secret anywhere; the store is sound ------------------------------------------------


def test_a_token_in_the_query_string_is_refused_and_not_logged(world):
    """A token of its own (not one the other tests use), so the scan below stays meaningful."""
    token = world.stack.draven("tokens", "create", "--person", "carol", "--name", "in-url").stdout.strip()
    for path in (f"/api/v1/jobs?access_token={token}", f"/hooks/github?project=app&token={token}"):
        method = "GET" if path.startswith("/api") else "POST"
        reply = refused_unchanged(world, http_bytes(method, path, b"{}" if method == "POST" else b""), path[:20])
        assert token.encode() not in reply.raw
    for name, text in all_logs(world.stack).items():
        assert token not in text, f"the token is in {name}"


def test_no_secret_in_any_response_or_log(world):
    assert len(RESPONSES) > 300, len(RESPONSES)
    values = secret_values(world.stack, world.fake.url)
    assert len(values) >= len(SECRETS) + len(PEOPLE)
    answers = b"\n".join(RESPONSES)
    logs = all_logs(world.stack)
    assert any(name.endswith("access.log") for name in logs) and any(name.endswith("error.log") for name in logs)
    for value in values:
        assert value.encode() not in answers, f"a secret ({value[:6]}…) in a response"
        for name, text in logs.items():
            assert value not in text, f"a secret ({value[:6]}…) in {name}"


def test_a_nul_in_a_field_is_stored_whole_and_the_audit_chain_holds(world):
    """Regression: text was bound to SQLite with length -1, so SQLite kept it only up to the first
    NUL (U+0000 is valid JSON): a refusal naming a project "app\\u0000x" stored subject "app" after
    hashing "app\\u0000x/…", which broke the audit chain for good; an accepted reason lost its tail."""
    stack = world.stack
    refused = stack.deploy("alice", "app\u0000x", "busy\u0000y", "main")
    assert refused.status == 404, refused
    verify = stack.draven("audit", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    accepted = stack.deploy("alice", "app", "gated", "main", reason="before\u0000after")
    assert accepted.status == 201, accepted
    job = accepted.json["id"]
    assert stack.rows("SELECT reason FROM jobs WHERE id = ?", job) == [("before\u0000after",)]
    assert (
        stack.request("GET", f"/api/v1/jobs/{job}", token=stack.tokens["alice"]).json["reason"] == "before\u0000after"
    )
    assert stack.request("POST", f"/api/v1/jobs/{job}/cancel", {}, token=stack.tokens["alice"]).status == 200
    settled(stack)
    assert stack.draven("audit", "verify", check=False).returncode == 0


def test_the_store_passes_draven_doctor(world):
    result = doctor(world.stack)
    assert result.returncode == 0, result.stdout + repr(
        world.stack.rows(
            "SELECT *, hex(detail), hex(subject), hex(actor) FROM audit WHERE id = ?",
            int(result.stdout.split("audit/")[1].split(":")[0]) if "audit/" in result.stdout else 0,
        )
    )
    assert "store healthy" in result.stdout
    report = json.loads(doctor(world.stack, "--json").stdout)
    assert report["ok"] is True and all(c["ok"] and c["ran"] for c in report["checks"].values())
