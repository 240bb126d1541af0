"""The edge: what nginx answers itself, what it logs, how it limits, and what refusals cost the store.
Malformed requests go out on raw sockets (an HTTP client library would refuse to send them)."""
import json
import os
import signal
import socket
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import assert_problem, conforms, launch

CONFIG = (Path(__file__).parent / "draven.test.toml").read_text()


@pytest.fixture(scope="module")
def edge():
    with launch(CONFIG, deliver="/bin/true") as s:
        yield s


def raw(port, data, timeout=10):
    """Sends bytes as they are and reads one response (until Content-Length bytes of body or EOF)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
            head, sep, body = out.partition(b"\r\n\r\n")
            if sep:
                length = [h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")]
                if length and len(body) >= int(length[0].split(b":")[1]):
                    break
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), out[:300]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def assert_raw_problem(reply, status, type_suffix):
    code, headers, body = reply
    assert code == status, reply
    assert headers.get("content-type") == "application/problem+json", reply
    problem = conforms(json.loads(body), "Problem")
    assert problem["status"] == status and problem["type"] == "https://draven.dev/problems/" + type_suffix, problem
    return problem


H = b"Host: draven\r\n"
DEPLOY = b"POST /api/v1/deploys HTTP/1.1\r\n" + H
# (name, bytes, status, problem type): each produced by nginx itself, before any function runs.
MALFORMED = [
    ("header line over 8 KB", b"GET /api/v1/locks HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n", 400,
     "header-too-large"),
    ("headers over 32 KB", b"GET /api/v1/locks HTTP/1.1\r\n" + H
     + b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 7000) for i in range(6)) + b"\r\n", 400, "header-too-large"),
    ("request line over 8 KB", b"GET /api/v1/jobs/" + b"1" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414,
     "uri-too-long"),
    ("Content-Length not a number", DEPLOY + b"Content-Length: abc\r\n\r\n", 400, "malformed-request"),
    ("Content-Length negative", DEPLOY + b"Content-Length: -1\r\n\r\n", 400, "malformed-request"),
    ("Content-Length twice", DEPLOY + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400, "malformed-request"),
    ("Content-Length and chunked", DEPLOY + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
     "malformed-request"),
    ("bad chunk size", DEPLOY + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n", 400, "malformed-request"),
    ("chunk size overflow", DEPLOY + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n", 400,
     "malformed-request"),
    ("unknown transfer coding", DEPLOY + b"Transfer-Encoding: gzip\r\n\r\n", 501, "not-implemented"),
    ("NUL in the path", b"GET /api/v1/jo\x00bs HTTP/1.1\r\n" + H + b"\r\n", 400, "malformed-request"),
    ("encoded NUL in the path", b"GET /api/v1/jobs/%00 HTTP/1.1\r\n" + H + b"\r\n", 400, "malformed-request"),
    ("NUL in a header", b"GET /api/v1/locks HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400, "malformed-request"),
    ("Authorization twice", b"GET /api/v1/locks HTTP/1.1\r\n" + H
     + b"Authorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n", 400, "malformed-request"),
    ("Host twice", b"GET /api/v1/locks HTTP/1.1\r\n" + H + H + b"\r\n", 400, "malformed-request"),
    ("no Host", b"GET /api/v1/locks HTTP/1.1\r\n\r\n", 400, "malformed-request"),
    ("space in a header name", b"GET /api/v1/locks HTTP/1.1\r\n" + H + b"X A: b\r\n\r\n", 400, "malformed-request"),
    ("bad method", b"G@T /api/v1/locks HTTP/1.1\r\n" + H + b"\r\n", 400, "malformed-request"),
    ("path above the root", b"GET /../../etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 400, "malformed-request"),
    ("not HTTP at all", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400, "malformed-request"),
    ("HTTP/2.0 request line", b"GET /api/v1/locks HTTP/2.0\r\n" + H + b"\r\n", 505, "http-version-not-supported"),
    ("TRACE", b"TRACE /api/v1/locks HTTP/1.1\r\n" + H + b"\r\n", 405, "method-not-allowed"),
    ("body over nginx's limit", DEPLOY + b"Content-Length: 5000000\r\n\r\n", 413, "body-too-large"),
    ("chunked body over nginx's limit", b"POST /api/v1/locks HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     + b"800\r\n" + b"a" * 0x800 + b"\r\n0\r\n\r\n", 413, "body-too-large"),
    ("an extension nginx has a type for", b"GET /index.html HTTP/1.1\r\n" + H + b"\r\n", 404, "not-found"),
    ("nginx's own error locations", b"GET /_draven/problems/bad-request HTTP/1.1\r\n" + H + b"\r\n", 404, "not-found"),
]


@pytest.mark.parametrize("name,data,status,ptype", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_what_nginx_answers_itself_is_problem_json(edge, name, data, status, ptype):
    before, refusals = edge.snapshot(), edge.refusals()
    assert_raw_problem(raw(edge.port, data), status, ptype)
    assert edge.snapshot() == before
    assert edge.refusals() == refusals  # no function ran


def test_a_function_that_cannot_be_reached_is_a_problem_json_502():
    with launch(CONFIG, deliver="/bin/true") as s:
        pgid = int((s.state_dir / "run" / "fcgiwrap.pid").read_text())
        os.killpg(pgid, signal.SIGKILL)  # this test's own fcgiwrap, by the group stack.sh recorded
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            reply = raw(s.port, b"GET /api/v1/locks HTTP/1.1\r\n" + H + b"\r\n")
            if reply[0] == 502:
                break
            time.sleep(0.05)
        assert_raw_problem(reply, 502, "gateway")


def function_processes(stack, name):
    """This stack's running `name` function processes (children of its fcgiwrap, in its process group)."""
    pgid = int((stack.state_dir / "run" / "fcgiwrap.pid").read_text())
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv0 = (entry / "cmdline").read_bytes().split(b"\0")[0]
            if entry.name.isdigit() and os.getpgid(int(entry.name)) == pgid and Path(os.fsdecode(argv0)).name == name:
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def test_a_function_that_dies_without_answering_is_a_problem_json_502(edge):
    # fcgiwrap answers for a program that exits without output (killed, crashed): `502` text/plain
    # "An error occurred while reading CGI reply". The write lock held here keeps an anonymous
    # refusal waiting (its audit row), in the real status function on its real route, to be killed.
    lock = sqlite3.connect(edge.state_dir / "draven.db", timeout=10, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(raw, edge.port, b"GET /api/v1/locks HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
            deadline = time.monotonic() + 5
            while not (pids := function_processes(edge, "status")) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert pids, "the status function never started"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            reply = pending.result()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert_raw_problem(reply, 502, "gateway")
    # The same route still passes the function's own refusals through untouched (not intercepted).
    code, headers, body = raw(edge.port, b"POST /api/v1/locks HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\n{}")
    assert (code, headers["content-type"], json.loads(body)["limit"]) == (413, "application/problem+json", 0)
    code, headers, body = raw(edge.port, b"GET /api/v1/locks HTTP/1.1\r\n" + H + b"\r\n")
    assert (code, headers["www-authenticate"], json.loads(body)["type"]) == (
        401, 'Bearer realm="draven"', "https://draven.dev/problems/unauthenticated")


# --- credentials in URLs ------------------------------------------------------------------------

def all_logs(stack):
    return b"".join(p.read_bytes() for p in (stack.state_dir / "run").rglob("*") if p.is_file() and p.suffix == ".log")


CREDENTIAL_ROUTES = [("GET", "/api/v1/jobs"), ("GET", "/api/v1/jobs/1"), ("GET", "/metrics"), ("GET", "/api/v1/dora"),
                     ("POST", "/api/v1/deploys"), ("POST", "/api/v1/jobs/1/approvals"),
                     ("POST", "/api/v1/jobs/1/heartbeat"), ("POST", "/hooks/github"), ("POST", "/chatops/slack"),
                     ("GET", "/")]


def test_tokens_in_the_query_string_are_refused_and_never_logged(edge):
    """Every request carries a distinct secret; after them no log file of the stack holds any."""
    secrets, before, refusals = [], edge.snapshot(), edge.refusals()
    for i, (method, path) in enumerate(CREDENTIAL_ROUTES):
        for name in ["access_token", "token", "private_token", "api_key"]:
            secret = f"SECRET{i}{name.upper()}x9"
            secrets.append(secret)
            r = edge.request(method, f"{path}?project=shop&{name}={secret}", body={} if method == "POST" else None)
            assert_problem(r, 400, "credentials-in-url")
        # A draven token under any name, and one whose body nginx refuses as too large (an error-log line).
        token = edge.tokens["alice"]
        r = edge.request(method, f"{path}?x={token}", body={} if method == "POST" else None)
        assert_problem(r, 400, "credentials-in-url")
        big = edge.request("POST", f"/api/v1/deploys?token=SECRETBIG{i}", body=b"{" + b" " * 2_000_000 + b"}")
        assert_problem(big, 400, "credentials-in-url")
        secrets.append(f"SECRETBIG{i}")
    # Ordinary query strings still work, and are not logged either (only the path is).
    listed = edge.request("GET", "/api/v1/jobs?project=shop&limit=7&state=queued", token=edge.tokens["alice"])
    assert listed.status == 200, listed
    assert edge.snapshot() == before and edge.refusals() == refusals  # refused at the edge: no function ran
    time.sleep(0.2)  # nginx writes its access log line after the answer
    logs = all_logs(edge)
    assert b"/api/v1/jobs " in logs and b"limit=7" not in logs
    for secret in secrets + [token]:
        assert secret.encode() not in logs, secret


# --- who may see what: metrics and job ids ------------------------------------------------------

def test_metrics_need_a_metrics_grant(edge):
    assert_problem(edge.request("GET", "/metrics"), 401, "unauthenticated")
    for who in ["bob", "carol", "dave"]:  # bob reads every environment, but holds no metrics grant
        problem = assert_problem(edge.request("GET", "/metrics", token=edge.tokens[who]), 403, "forbidden")
        assert problem["action"] == "metrics"
    r = edge.request("GET", "/metrics", token=edge.tokens["alice"])
    assert r.status == 200 and r.content_type.startswith("text/plain") and b"draven_jobs{" in r.body


def test_a_metrics_grant_must_cover_every_project(edge, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(CONFIG + '\n[[grants]]\nperson = "carol"\nproject = "shop"\nactions = ["metrics"]\n')
    out = edge.draven("apply", "--dry-run", "-f", str(bad), check=False)
    assert out.returncode != 0 and "metrics cover every project" in out.stderr + out.stdout


JOB_ROUTES = [("GET", "/api/v1/jobs/{id}", None), ("GET", "/api/v1/jobs/{id}/approvals", None),
              ("POST", "/api/v1/jobs/{id}/approvals", {"decision": "approve"}),
              ("POST", "/api/v1/jobs/{id}/rollback", {}), ("POST", "/api/v1/jobs/{id}/cancel", {})]


@pytest.mark.parametrize("method,route,body", JOB_ROUTES, ids=[f"{m} {r}" for m, r, _ in JOB_ROUTES])
def test_a_job_the_caller_cannot_read_is_not_found_like_an_unknown_one(edge, method, route, body):
    prod = edge.deploy("alice", "shop", "prod", "v3.1.4")
    assert prod.status == 201, prod
    job = prod.json["id"]
    before, unknown_id = edge.snapshot(), 987654
    for who in ["carol", "dave"]:  # carol reads demo and staging only; dave holds no grant at all
        hidden = edge.request(method, route.format(id=job), body, token=edge.tokens[who])
        unknown = edge.request(method, route.format(id=unknown_id), body, token=edge.tokens[who])
        assert_problem(hidden, 404, "not-found")
        assert_problem(unknown, 404, "not-found")
        assert hidden.json == json.loads(unknown.body.replace(str(unknown_id).encode(), str(job).encode()))
        assert b"prod" not in hidden.body and b"shop" not in hidden.body
        assert hidden.headers.get("Content-Type") == unknown.headers.get("Content-Type")
    assert edge.snapshot() == before
    # Someone who may read the environment but not act in it is still told why (403).
    if method == "POST":
        demo = edge.deploy("alice", "shop", "demo", "develop").json["id"]
        assert_problem(edge.request(method, route.format(id=demo), body, token=edge.tokens["dave"]), 404, "not-found")
        if route.endswith("approvals"):
            readable = edge.request(method, route.format(id=demo), body, token=edge.tokens["carol"])
            assert_problem(readable, 403, "forbidden")


# --- what refusals cost the store, and the rate limit -------------------------------------------

def store_bytes(stack):
    """The database's size with its WAL folded in (no other connection is open: each function's
    close checkpointed it; the file itself is what has grown)."""
    with stack.db() as c:
        return c.execute("PRAGMA page_count").fetchone()[0] * c.execute("PRAGMA page_size").fetchone()[0]


LONG = "a" * 7000  # a 7 KB path segment: the request line stays under nginx's 8 KB


def test_anonymous_refusals_with_long_paths_grow_the_store_by_a_bounded_amount():
    with launch(CONFIG, deliver="/bin/true") as s:
        routes = [("GET", f"/api/v1/jobs/{LONG}"), ("GET", f"/api/v1/jobs/{LONG}/approvals"),
                  ("POST", f"/api/v1/jobs/{LONG}/approvals"), ("POST", f"/api/v1/jobs/{LONG}/rollback"),
                  ("POST", f"/api/v1/jobs/{LONG}/heartbeat")]
        assert s.request("GET", "/api/v1/locks", token=s.tokens["alice"]).status == 200  # store opened and settled
        audit_before, size_before, refusals = s.rows("SELECT count(*) FROM audit")[0][0], store_bytes(s), s.refusals()

        def go(i):
            method, path = routes[i % len(routes)]
            return s.request(method, path, body={} if method == "POST" else None,
                             token="drv_000000000000_forged" if i % 2 else None)

        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(go, range(400)))
        assert {r.status for r in replies} <= {401, 404}, {r.status for r in replies}
        assert all(r.content_type.startswith("application/problem+json") for r in replies)
        # Nothing chained; every refusal counted, in a handful of rows.
        assert s.rows("SELECT count(*) FROM audit")[0][0] == audit_before
        assert s.refusals() == refusals + 400
        counters = s.rows("SELECT client, function, problem, count, length(last_path), length(last_detail)"
                          " FROM refusal_counts")
        assert 1 <= len(counters) <= 10, counters
        assert all(client == "127.0.0.1" and path_len <= 256 and detail_len <= 256
                   for client, _, _, _, path_len, detail_len in counters), counters
        grown = store_bytes(s) - size_before
        assert grown <= 32 * 1024, grown  # before the fix: ~2.9 MB (400 chained rows with 7 KB paths)
        shown = [json.loads(line) for line in s.draven("audit", "refusals", "--json").stdout.splitlines()]
        assert sum(c["count"] for c in shown) == 400 and {c["function"] for c in shown} >= {"status", "approve"}
        assert "audit trail intact" in s.draven("audit", "verify").stdout

        # An identified caller's refusal keeps its own chained record, with what came from the request capped.
        r = s.request("GET", f"/api/v1/jobs/{LONG}", token=s.tokens["carol"])
        assert_problem(r, 404, "not-found")
        [(actor, detail)] = s.rows("SELECT actor, detail FROM audit WHERE outcome = 'refused' ORDER BY id DESC LIMIT 1")
        detail = json.loads(detail)
        assert actor == "carol" and "path" in detail["truncated"] and len(detail["path"].encode()) <= 256
        assert len(json.dumps(detail)) < 1024


def test_a_burst_over_the_default_rate_limit_is_answered_429_problem_json():
    with launch(CONFIG, deliver="/bin/true", rate_limit=None) as s:  # stack.sh's defaults: 50 r/s, burst 200
        refusals = s.refusals()
        start = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(lambda _: s.request("GET", "/api/v1/locks"), range(600)))
        elapsed = time.monotonic() - start
        limited = [r for r in replies if r.status == 429]
        passed = [r for r in replies if r.status != 429]
        assert {r.status for r in passed} == {401}
        assert len(limited) >= 100, (len(limited), elapsed)
        assert len(passed) <= 200 + 50 * elapsed + 10, (len(passed), elapsed)
        for r in limited[:20]:
            assert_problem(r, 429, "too-many-requests")
            assert r.headers["Retry-After"] == "1"
        assert s.refusals() == refusals + len(passed)  # a limited request never reaches a function
        # The access log has a line for each (with the path asked for, not the error page's); the
        # error log none.
        time.sleep(0.2)
        access = (s.state_dir / "run" / "access.log").read_text()
        assert access.count('"GET /api/v1/locks HTTP/1.1" 429') == len(limited)
        assert "limiting requests" not in s.error_log()
