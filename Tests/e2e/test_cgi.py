"""The functions as CGI programs, fed an environment and stdin the way fcgiwrap feeds them."""
import json
import time
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


def test_a_function_leaves_the_store_open_only_while_sweep_holds_it():
    """Without `draven sweep` the last connection closes: SQLite checkpoints and removes the WAL.
    While a service marks the store as held (`<db>-holder`, shared lock) a function exits without
    closing; once the mark is gone the next one closes again and the WAL is checkpointed."""
    import fcntl
    from conftest import launch
    with launch((Path(__file__).parent / "draven.test.toml").read_text(), deliver="/bin/true") as s:
        db = Path(s.state_dir) / "draven.db"
        wal = Path(str(db) + "-wal")
        jobs = lambda: s.request("GET", "/api/v1/jobs", token=s.tokens["alice"])
        assert jobs().status == 200
        assert not wal.exists()  # the last connection closed: checkpointed and removed
        with open(str(db) + "-holder", "a+") as mark:  # what `draven sweep` holds
            fcntl.lockf(mark, fcntl.LOCK_SH | fcntl.LOCK_NB)
            assert jobs().status == 200
            assert wal.exists()  # exited without closing: the service keeps the WAL index alive
            created = s.deploy("carol", "shop", "staging", "refs/heads/main")
            assert created.status == 201
        # No service: the next request to find itself the only connection closes, checkpoints and
        # removes the WAL (the deploy's process may still be on its way to exec the deliverer).
        deadline = time.monotonic() + 10
        while True:
            assert jobs().status == 200
            if not wal.exists() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not wal.exists()
        assert s.rows("SELECT count(*) FROM jobs")[0][0] == 1


def test_sweep_marks_the_store_as_held_while_it_runs():
    from conftest import launch
    with launch((Path(__file__).parent / "draven.test.toml").read_text(), deliver="/bin/true", sweep_every="1s") as s:
        holder = str(Path(s.state_dir) / "draven.db") + "-holder"
        # Exit status 3: an exclusive lock is refused (someone holds a lock); 0: it was free.
        probe = ["python3", "-c", "import fcntl, sys\nf = open(sys.argv[1], 'a+')\n"
                 "try:\n    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(3)", holder]
        deadline = time.monotonic() + 10
        while not Path(holder).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Path(holder).exists()
        assert subprocess.run(probe, capture_output=True).returncode == 3  # sweep holds its shared lock
        s.stack("stop")
        assert subprocess.run(probe, capture_output=True).returncode == 0  # stopped: the mark went with it
