"""The edge: what nginx answers itself, what it logs, how it limits, and what refusals cost the store.
Malformed requests go out on raw sockets (an HTTP client library would refuse to send them)."""
import json
import os
import signal
import socket
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
    problem = conforms(json.loads(body), "problem")
    assert problem["status"] == status and problem["type"] == "https://draven.dev/problems/" + type_suffix, problem
    return problem


H = b"Host: draven\r\n"
DEPLOY = b"POST /api/v1/deploys HTTP/1.1\r\n" + H
# (name, bytes, status, problem type): each produced by nginx itself, before any function runs.
MALFORMED = [
    ("header line over 8 KB", b"GET /api/v1/locks HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n", 400, "header-too-large"),
    ("headers over 32 KB", b"GET /api/v1/locks HTTP/1.1\r\n" + H
     + b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 7000) for i in range(6)) + b"\r\n", 400, "header-too-large"),
    ("request line over 8 KB", b"GET /api/v1/jobs/" + b"1" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414, "uri-too-long"),
    ("Content-Length not a number", DEPLOY + b"Content-Length: abc\r\n\r\n", 400, "malformed-request"),
    ("Content-Length negative", DEPLOY + b"Content-Length: -1\r\n\r\n", 400, "malformed-request"),
    ("Content-Length twice", DEPLOY + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400, "malformed-request"),
    ("Content-Length and chunked", DEPLOY + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
     "malformed-request"),
    ("bad chunk size", DEPLOY + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n", 400, "malformed-request"),
    ("chunk size overflow", DEPLOY + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n", 400, "malformed-request"),
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


# --- credentials in URLs ------------------------------------------------------------------------

def all_logs(stack):
    return b"".join(p.read_bytes() for p in (stack.state_dir / "run").rglob("*") if p.is_file() and p.suffix == ".log")


CREDENTIAL_ROUTES = [("GET", "/api/v1/jobs"), ("GET", "/api/v1/jobs/1"), ("GET", "/metrics"), ("POST", "/api/v1/deploys"),
                     ("POST", "/api/v1/jobs/1/approvals"), ("POST", "/api/v1/jobs/1/heartbeat"), ("POST", "/hooks/github"),
                     ("POST", "/chatops/slack"), ("GET", "/")]


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
