"""Archived logs through real nginx + fcgiwrap: the shell runner streams a deploy's output in signed
chunks (POST /hooks/runner/log, served by heartbeat) while it runs, GET /api/v1/jobs/{id}/log reads it
back byte for byte (masked), refused chunks change nothing, the per-job cap cuts a log and says so,
and `draven sweep` prunes logs after the retention period."""
import base64
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pytest

from conftest import ROOT, assert_problem, launch

sys.path.insert(0, str(ROOT / "infra"))
from demo_provider import FakeProvider  # noqa: E402

SECRETS = {"gh-token": "ghp_canaryLOGS01", "gh-hook": "canaryLOGShook", "runner": "canaryRUNNERlogs-7f3a9c"}
RUNNER = ROOT / "infra" / "runner" / "draven-runner.sh"
CAP = 256 * 1024


@pytest.fixture(scope="module")
def world():
    fake = FakeProvider().start()
    config = (Path(__file__).parent / "draven.logs.toml").read_text().replace("@FAKE@", fake.url)
    try:
        with launch(config, people=("alice", "bob"), secrets=SECRETS) as stack:
            yield stack
            stack.assert_secrets_absent(
                SECRETS.values(), ("audit", "job_events", "outbox", "jobs"), store=True)
            # Nor in the logs' chunks (compressed, or as they are).
            for size, encoding, data in stack.rows("SELECT size, encoding, data FROM job_log_chunks"):
                text = zlib.decompress(data) if encoding == 1 else data
                assert len(text) == size and SECRETS["runner"].encode() not in text
    finally:
        fake.stop()


def signed(stack, path, payload, secret=SECRETS["runner"], timestamp=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    ts = str(timestamp if timestamp is not None else int(time.time()))
    sig = "v1=" + hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return stack.request("POST", path, body, headers={"X-Draven-Timestamp": ts, "X-Draven-Signature": sig})


def chunk(stack, job, seq, data, token=None, **kwargs):
    token = token if token is not None else stack.rows("SELECT fencing_token FROM jobs WHERE id = ?", job)[0][0]
    payload = {"job_id": job, "fencing_token": token, "seq": seq, "data": base64.b64encode(data).decode()}
    return signed(stack, "/hooks/runner/log", payload, **kwargs)


def read_log(stack, job, after=None, who="alice"):
    path = f"/api/v1/jobs/{job}/log" + ("" if after is None else f"?after={after}")
    return stack.request("GET", path, token=stack.tokens[who])


def running(stack, env):
    r = stack.deploy("alice", "app", env, "refs/heads/main")
    assert r.status == 201, r
    job = r.json["id"]
    assert stack.wait_for(job, {"running", "failed"}) == "running"
    return job


def finish(stack, job, result="succeeded"):
    token = stack.rows("SELECT fencing_token FROM jobs WHERE id = ?", job)[0][0]
    r = signed(stack, "/hooks/runner", {"job_id": job, "fencing_token": token, "result": result})
    assert r.status == 200, r


def run_runner(stack, job, tmp_path, script, **extra):
    entry = tmp_path / "run.sh"
    entry.write_bytes(script)
    entry.chmod(0o755)
    token = stack.rows("SELECT fencing_token FROM jobs WHERE id = ?", job)[0][0]
    env = dict(os.environ, DRAVEN_URL=stack.url, DRAVEN_RUNNER_SECRET=SECRETS["runner"], JOB_ID=str(job),
               DRAVEN_FENCING_TOKEN=str(token), ENV="logs", REF="refs/heads/main", DRAVEN_HEARTBEAT_EVERY="1",
               DRAVEN_LOG_EVERY="1")
    env.update(extra)
    return subprocess.run([str(RUNNER), str(entry)], env=env, capture_output=True, timeout=120)


def snapshot(stack):
    stack.wait_settled()
    return stack.snapshot()


def test_a_log_streamed_by_the_runner_reads_back_byte_for_byte(world, tmp_path):
    stack = world
    job = running(stack, "logs")
    secret = SECRETS["runner"]
    b64_secret = base64.b64encode(secret.encode()).decode()
    # The deploy writes text, invalid UTF-8, a NUL, a terminal colour, a line longer than a chunk, the
    # runner secret (masked by the runner) and its base64 (masked by draven: its padding stays), pauses while draven already
    # holds the first part (its log is readable, not complete), and ends without a final newline.
    mid = tmp_path / "mid"
    script = f"""#!/bin/sh
echo "step 1: building"
printf 'bytes: \\377\\376 nul:\\000 colour: \\033[31mred\\033[0m\\n'
echo "the token is {secret} (twice: {secret})"
echo "base64: {b64_secret}"
echo "stderr line" >&2
sleep 3
curl -sS -D "{mid}.headers" -o "{mid}.body" -H "Authorization: Bearer $READ_TOKEN" "$DRAVEN_URL/api/v1/jobs/$JOB_ID/log"
head -c 70000 /dev/zero | tr '\\000' 'x'; echo
i=0; while [ $i -lt 3000 ]; do echo "line $i of the migration output"; i=$((i + 1)); done
printf 'done, no newline at the end'
""".encode()
    done = run_runner(stack, job, tmp_path, script, READ_TOKEN=stack.tokens["alice"])
    assert done.returncode == 0, done
    expected = (b"step 1: building\n"
                b"bytes: \xff\xfe nul:\x00 colour: \x1b[31mred\x1b[0m\n"
                b"the token is *** (twice: ***)\n"
                b"base64: ***" + b"=" * b64_secret.count("=") + b"\n"  # draven masks the unpadded form
                b"stderr line\n"
                + b"x" * 70000 + b"\n"
                + b"".join(b"line %d of the migration output\n" % i for i in range(3000))
                + b"done, no newline at the end")
    r = read_log(stack, job)
    assert r.status == 200 and r.content_type == "text/plain; charset=utf-8", r
    assert r.body == expected
    seq = int(r.headers["Draven-Log-Seq"])
    assert seq >= 4  # several chunks: the first part, the long line, the rest
    assert r.headers["Draven-Log-Complete"] == "true" and "Draven-Log-Truncated" not in r.headers
    assert stack.rows("SELECT last_seq, bytes, cut_seq FROM job_logs WHERE job_id = ?", job) == [(seq, len(expected), None)]
    # Stored as it came; the next sweep pass compresses it, and it reads the same.
    assert stack.rows("SELECT stored = bytes FROM job_logs WHERE job_id = ?", job) == [(1,)]
    stack.sweep_once(0)
    assert stack.rows("SELECT count(*) FROM job_log_chunks WHERE job_id = ? AND encoding = 0", job) == [(0,)]
    (stored, total), = stack.rows("SELECT stored, bytes FROM job_logs WHERE job_id = ?", job)
    assert stored < total / 5, (stored, total)
    assert read_log(stack, job).body == expected
    # Mid-run, the first part was there already and the log said it was not complete.
    headers = Path(f"{mid}.headers").read_text().lower()
    assert "draven-log-complete: false" in headers, headers
    assert expected.startswith(Path(f"{mid}.body").read_bytes()) and Path(f"{mid}.body").read_bytes()
    # after=: the chunks after a seq, exactly; past the end, nothing and the same seq.
    rows = stack.rows("SELECT seq, size FROM job_log_chunks WHERE job_id = ? ORDER BY seq", job)
    first = rows[0][1]
    r = read_log(stack, job, after=1)
    assert r.body == expected[first:] and r.headers["Draven-Log-Seq"] == str(seq)
    r = read_log(stack, job, after=seq)
    assert r.body == b"" and r.headers["Draven-Log-Seq"] == str(seq)
    r = read_log(stack, job, after=seq + 5)
    assert r.body == b"" and r.headers["Draven-Log-Seq"] == str(seq + 5)
    # The CI's own log (the runner's stdout) shows the same output, masked by the runner.
    shown = expected.replace(b"base64: ***", b"base64: " + b64_secret.rstrip("=").encode())
    assert shown in done.stdout and secret.encode() not in done.stdout + done.stderr
    # The job ended through the runner's callback, after the last chunk.
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", job) == [("succeeded",)]
    # Someone without a read grant on the environment finds no such job; a bad after= is refused.
    assert_problem(read_log(stack, job, who="bob"), 404, "not-found")
    assert_problem(read_log(stack, job, after="-1"), 422, "invalid-field")
    assert_problem(read_log(stack, job, after="x"), 422, "invalid-field")
    assert_problem(stack.request("GET", f"/api/v1/jobs/{job}/log"), 401, "unauthenticated")


class LossyProxy:
    """Forwards to draven, but answers the first `lose` log chunks with 503 after draven stored them:
    the runner's view of an answer lost on the way back."""

    def __init__(self, target, lose):
        self.target, self.lose, self.lost = target, lose, 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = urllib.request.Request(proxy.target + self.path, data=body, method="POST")
                for name in ("Content-Type", "X-Draven-Timestamp", "X-Draven-Signature"):
                    if self.headers.get(name):
                        req.add_header(name, self.headers[name])
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        status, answer = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, answer = e.code, e.read()
                if self.path == "/hooks/runner/log" and proxy.lost < proxy.lose:
                    proxy.lost += 1
                    status, answer = 503, b"lost"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_chunk_whose_answer_was_lost_is_sent_again_under_its_seq(world, tmp_path):
    stack = world
    job = running(stack, "logs")
    proxy = LossyProxy(stack.url, lose=2)
    try:
        script = b"#!/bin/sh\necho one\nsleep 2\necho two\nsleep 2\necho three\n"
        done = run_runner(stack, job, tmp_path, script, DRAVEN_URL=proxy.url)
    finally:
        proxy.server.shutdown()
    assert done.returncode == 0 and proxy.lost == 2, done
    r = read_log(stack, job)
    assert r.body == b"one\ntwo\nthree\n" and r.headers["Draven-Log-Complete"] == "true", r
    # Each line once: the repeats were duplicates (200), not new chunks.
    assert stack.rows("SELECT count(*), max(seq) FROM job_log_chunks WHERE job_id = ?", job) == [(3, 3)]


def test_a_replayed_or_forged_chunk_is_refused_and_changes_nothing(world):
    stack = world
    job = running(stack, "refused")
    token = stack.rows("SELECT fencing_token FROM jobs WHERE id = ?", job)[0][0]
    r = chunk(stack, job, 1, b"first line\n")
    assert r.status == 201 and r.json == {"job_id": job, "seq": 1, "bytes": 11, "cut": False}, r
    # The same chunk again (a runner retrying an answer it lost): 200, nothing changes.
    before = snapshot(stack)
    r = chunk(stack, job, 1, b"first line\n")
    assert r.status == 200 and r.json["status"] == "duplicate", r
    assert snapshot(stack) == before
    refusals = stack.refusals()
    cases = [
        ("other data under a used seq", chunk(stack, job, 1, b"something else\n"), 409, "conflict"),
        ("a gap", chunk(stack, job, 3, b"third\n"), 409, "conflict"),
        ("forged: another secret", chunk(stack, job, 2, b"forged\n", secret="not-the-runner-secret"), 401, "bad-signature"),
        ("an old signature", chunk(stack, job, 2, b"late\n", timestamp=int(time.time()) - 3600), 401, "bad-signature"),
        ("an unknown job", chunk(stack, 999999, 1, b"x\n", token=token), 401, "bad-signature"),
        ("a stale fencing token", chunk(stack, job, 2, b"x\n", token=token + 1), 409, "stale-fencing-token"),
        ("over 64 KiB decoded", chunk(stack, job, 2, b"y" * 65537), 413, "body-too-large"),
        ("not base64", signed(stack, "/hooks/runner/log",
                              {"job_id": job, "fencing_token": token, "seq": 2, "data": "not base64!"}), 422, "invalid-field"),
        ("empty data", chunk(stack, job, 2, b""), 422, "invalid-field"),
        ("seq 0", chunk(stack, job, 0, b"x\n"), 422, "invalid-field"),
        ("an unknown field", signed(stack, "/hooks/runner/log", {"job_id": job, "fencing_token": token, "seq": 2,
                                                                   "data": "eA==", "level": "info"}), 422, "invalid-field"),
        ("a body over the route's limit", signed(stack, "/hooks/runner/log", b"{" + b" " * (100 * 1024) + b"}"), 413,
         "body-too-large"),
        ("not JSON", signed(stack, "/hooks/runner/log", b"seq=2"), 400, "malformed-request"),
    ]
    for name, reply, status, ptype in cases:
        assert_problem(reply, status, ptype)
    assert snapshot(stack) == before
    # Each is counted (the body over the route's limit is refused by nginx, before any function runs).
    assert stack.refusals() == refusals + len(cases) - 1
    # The log reads as the one chunk stored.
    r = read_log(stack, job)
    assert r.body == b"first line\n" and r.headers["Draven-Log-Seq"] == "1" and r.headers["Draven-Log-Complete"] == "false"
    # After the job ends, its log takes nothing more: complete.
    finish(stack, job)
    before = snapshot(stack)
    assert_problem(chunk(stack, job, 2, b"after the end\n"), 409, "conflict")
    assert snapshot(stack) == before
    assert read_log(stack, job).headers["Draven-Log-Complete"] == "true"


def test_an_oversized_log_is_cut_at_the_cap_and_says_so(world, tmp_path):
    stack = world
    job = running(stack, "cap")
    # 400 KiB of numbered lines against a 256 KiB cap; the deploy goes on and succeeds.
    script = b"""#!/bin/sh
i=0; while [ $i -lt 12000 ]; do printf 'output line %06d .........................\\n' $i; i=$((i + 1)); done
echo "the end"
"""
    done = run_runner(stack, job, tmp_path, script)
    assert done.returncode == 0, done
    assert stack.rows("SELECT state FROM jobs WHERE id = ?", job) == [("succeeded",)]
    full = b"".join(b"output line %06d .........................\n" % i for i in range(12000)) + b"the end\n"
    r = read_log(stack, job)
    assert r.status == 200 and r.headers["Draven-Log-Truncated"] == "true" and r.headers["Draven-Log-Complete"] == "true"
    mark = b"[draven: the log was cut here: it reached the cap of 262144 bytes per job (logs.max_job_bytes); " \
           b"later output was not stored]\n"
    kept = r.body[:-len(mark)]
    assert r.body.endswith(mark) and len(kept) - CAP in (0, 1)  # a line cut in two gets a newline before the mark
    assert full.startswith(kept[:CAP])
    (last, cut, dropped, stored), = stack.rows("SELECT last_seq, cut_seq, dropped, bytes FROM job_logs WHERE job_id = ?", job)
    assert cut is not None and stored == len(r.body)
    # The chunk after the cut was acknowledged (202) and counted, not stored; the runner then sent no more
    # and the rest went to the CI's log only.
    assert last == cut + 1 and dropped > 0
    assert stack.rows("SELECT max(seq) FROM job_log_chunks WHERE job_id = ?", job) == [(cut,)]
    assert full in done.stdout and b"per-job cap" in done.stderr


def test_sweep_prunes_logs_after_the_retention_period(world):
    stack = world
    job = running(stack, "other")
    assert chunk(stack, job, 1, b"kept for 30 days\n").status == 201
    finish(stack, job)
    # Within the retention, sweep leaves it.
    stack.sweep_once(29 * 86400)
    assert read_log(stack, job).body == b"kept for 30 days\n"
    out = stack.sweep_once(31 * 86400)
    assert f"#{job}" in out.stdout and "pruned the logs of" in out.stdout, out.stdout
    r = read_log(stack, job)
    assert r.status == 200 and r.body == b"" and r.headers["Draven-Log-Pruned"], r
    assert stack.rows("SELECT count(*) FROM job_log_chunks WHERE job_id = ?", job) == [(0,)]
    assert stack.rows("SELECT pruned_at IS NOT NULL FROM job_logs WHERE job_id = ?", job) == [(1,)]
