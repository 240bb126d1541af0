"""The functions as CGI programs, fed an environment and stdin the way fcgiwrap feeds them."""
import json
import subprocess
import tempfile
import shutil
from pathlib import Path

import pytest

from conftest import BIN_DIR


def cgi(name, env, body=b"", close_stdin=True, timeout=10):
    base = {"REQUEST_METHOD": "POST", "REQUEST_URI": "/api/v1/deploys", "CONTENT_TYPE": "application/json",
            "DRAVEN_STATE_DIR": "/nonexistent", "PATH": "/usr/bin:/bin"}
    p = subprocess.Popen([str(BIN_DIR / name)], env={**base, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    if body:
        p.stdin.write(body)
    if close_stdin:
        p.stdin.close()
    return p


def parse(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("Status: ")
    status = int(lines[0].split()[1])
    headers = dict(l.split(": ", 1) for l in lines[1:])
    assert int(headers["Content-Length"]) == len(body)
    return status, headers, body


def test_too_large_is_answered_before_the_body_is_read():
    # CONTENT_LENGTH promises 1 GB and nothing is sent: the answer must come anyway, at once.
    p = cgi("trigger", {"CONTENT_LENGTH": str(10**9)}, close_stdin=False)
    first = p.stdout.read1(65536)
    status, headers, body = parse(first)
    assert status == 413 and headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["limit"] == 65536
    p.stdin.close()
    assert p.wait(timeout=10) == 0


def test_a_body_shorter_than_content_length_is_malformed():
    p = cgi("trigger", {"CONTENT_LENGTH": "100"}, body=b'{"a":1}')
    status, _, body = parse(p.stdout.read())
    assert status == 400 and "ended after 7 of 100 bytes" in json.loads(body)["detail"]


def test_nonsense_content_length():
    p = cgi("trigger", {"CONTENT_LENGTH": "-5"})
    assert parse(p.stdout.read())[0] == 400


def test_store_not_ready_is_503_and_creates_nothing():
    d = Path(tempfile.mkdtemp(prefix="draven-nostore-"))
    try:
        p = cgi("trigger", {"DRAVEN_STATE_DIR": str(d), "CONTENT_LENGTH": "2", "HTTP_AUTHORIZATION": "Bearer drv_x_y"}, body=b"{}")
        status, headers, body = parse(p.stdout.read())
        assert status == 503 and headers["Retry-After"] == "1"
        assert json.loads(body)["type"].endswith("/store-not-ready")
        assert list(d.iterdir()) == []  # no database file was created
    finally:
        shutil.rmtree(d)


def test_status_index_and_head():
    for method in ["GET", "HEAD"]:
        p = cgi("status", {"REQUEST_METHOD": method, "REQUEST_URI": "/", "CONTENT_LENGTH": ""})
        status, _, body = parse(p.stdout.read())
        assert status == 200 and json.loads(body)["service"] == "draven"


def test_status_refuses_a_body():
    p = cgi("status", {"REQUEST_METHOD": "GET", "REQUEST_URI": "/api/v1/locks", "CONTENT_LENGTH": "10"}, body=b"0123456789")
    assert parse(p.stdout.read())[0] == 413
