"""Shared by the attack suites (test_hostile.py, test_crash.py): the stack they attack, signing for
every route's scheme, raw HTTP over a socket, a full dump of the store and the secrets to look for."""

import base64
import hashlib
import hmac
import json
import socket
import sqlite3
import time
from pathlib import Path

TEAMS_TOKEN = base64.b64encode(b"canaryTEAMSattack-0123456789abcdef").decode()
SECRETS = {
    "slack-signing": "canarySLACKsignATTACK1",
    "slack-bot": "xoxb-canary-ATTACK-BOT2",
    "teams-token": TEAMS_TOKEN,
    "mm-token": "canaryMMtokenATTACK3",
    "gh-token": "ghp_canaryATTACKgh4",
    "gh-hook": "canaryGHhookATTACK5",
    "gl-token": "glpat-canaryATTACK6",
    "gl-hook": "canaryGLhookATTACK7",
    "bb-token": "bbat-canaryATTACK8",
    "bb-hook": "canaryBBhookATTACK9",
    "runner": "canaryRUNNERattack10",
}
PEOPLE = ("alice", "bob", "carol")
TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "rejected", "expired"}


def config(fake_url):
    return (Path(__file__).parent / "draven.attacks.toml").read_text().replace("@FAKE@", fake_url)


def secrets(fake_url):
    return dict(SECRETS, **{"teams-url": f"{fake_url}/teams/wf?sig=canaryTEAMSurlATTACK"})


# -- signing, per scheme -----------------------------------------------------------------------


def hex_hmac(key, data):
    return hmac.new(key.encode(), data, hashlib.sha256).hexdigest()


def runner_headers(body, secret=SECRETS["runner"], ts=None):
    ts = str(int(time.time()) if ts is None else ts)
    return {"X-Draven-Timestamp": ts, "X-Draven-Signature": "v1=" + hex_hmac(secret, ts.encode() + b"." + body)}


def github_headers(body, event="workflow_run", delivery=None):
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or f"d-{time.time_ns()}",
        "X-Hub-Signature-256": "sha256=" + hex_hmac(SECRETS["gh-hook"], body),
    }


def gitlab_headers(body, event="Pipeline Hook"):
    return {"X-Gitlab-Event": event, "X-Gitlab-Token": SECRETS["gl-hook"], "X-Gitlab-Event-UUID": f"u-{time.time_ns()}"}


def bitbucket_headers(body, event="repo:commit_status_updated"):
    return {
        "X-Event-Key": event,
        "X-Request-UUID": f"r-{time.time_ns()}",
        "X-Hub-Signature": "sha256=" + hex_hmac(SECRETS["bb-hook"], body),
    }


def slack_headers(body, ts=None):
    ts = str(int(time.time()) if ts is None else ts)
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": "v0=" + hex_hmac(SECRETS["slack-signing"], f"v0:{ts}:".encode() + body),
    }


def teams_headers(body):
    mac = hmac.new(base64.b64decode(TEAMS_TOKEN), body, hashlib.sha256).digest()
    return {"Authorization": "HMAC " + base64.b64encode(mac).decode()}


def mattermost_headers(body):
    return {"Authorization": "Token " + SECRETS["mm-token"]}


# -- raw HTTP ------------------------------------------------------------------------------------


class Raw:
    def __init__(self, status, headers, body, raw):
        self.status, self.headers, self.body, self.raw = status, headers, body, raw

    @property
    def content_type(self):
        return self.headers.get("content-type", "")

    def __repr__(self):
        return f"<{self.status} {self.content_type} {self.body[:200]!r}>"


def raw_exchange(port, data, pauses=(), timeout=10, half_close=False):
    """Sends `data` (bytes, or a list of pieces sent with `pauses` seconds between them) and reads
    the first response until the server closes. Returns a Raw (status None when nothing came)."""
    pieces = data if isinstance(data, list) else [data]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        for i, piece in enumerate(pieces):
            if i and pauses:
                time.sleep(pauses[min(i - 1, len(pauses) - 1)])
            try:
                s.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered (and closed) before taking it all
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while True:
                got = s.recv(65536)
                if not got:
                    break
                chunks.append(got)
                if response_complete(b"".join(chunks)):
                    break
        except (ConnectionResetError, socket.timeout):
            pass
    return parse_response(b"".join(chunks))


def response_complete(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def parse_response(data):
    if not data:
        return Raw(None, {}, b"", data)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode(errors="replace")
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return Raw(status, headers, body, data)


def http_bytes(method, path, body=b"", headers=None, content_length=True):
    """A request as bytes: HTTP/1.1, Connection: close, the headers given (str or bytes values)."""
    out = [
        f"{method} ".encode() + (path if isinstance(path, bytes) else path.encode()) + b" HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Connection: close",
    ]
    for name, value in (headers or {}).items():
        out.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()))
    if content_length and body is not None and (body or method in ("POST", "PUT", "PATCH")):
        out.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(out) + b"\r\n\r\n" + (body or b"")


# -- the store -----------------------------------------------------------------------------------


def dump_store(db_path):
    """Every row of every table (found in sqlite_master, every column), rows sorted: a full snapshot."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as c:
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out = {}
        for t in tables:
            columns = [r[1] for r in c.execute(f'PRAGMA table_info("{t}")')]
            rows = c.execute(f'SELECT * FROM "{t}"').fetchall()
            out[t] = (columns, sorted(rows, key=repr))
        return out


def assert_unchanged(before, after, what=""):
    """Nothing changed but refusals appended to the audit trail (README: a refused request changes
    nothing but one `refused` record). Any other table a refusal may write must be named here, with
    what it may write: the allowance is this one place."""
    assert before.keys() == after.keys(), what
    for table in before:
        if table in ("audit", "refusal_counts", "refusal_totals"):
            continue
        assert before[table] == after[table], (
            f"{what}: table {table} changed: " f"{set(after[table][1]) ^ set(before[table][1])}"
        )
    columns, old = before["audit"]
    _, new = after["audit"]
    old_ids = {r[0] for r in old}
    added = [r for r in new if r[0] not in old_ids]
    assert [r for r in new if r[0] in old_ids] == old, f"{what}: audit records changed"
    outcome = columns.index("outcome")
    assert all(r[outcome] == "refused" for r in added), f"{what}: audit records other than refusals: {added}"
    # An unauthenticated client's refusals are counted, not chained (defect 8): a counter row may be
    # added or counted up, nothing else about it may change.
    if "refusal_counts" in before:
        columns, old = before["refusal_counts"]
        _, new = after["refusal_counts"]
        key = [columns.index(c) for c in ("client", "function", "problem", "bucket")]
        first, count = columns.index("first_at"), columns.index("count")
        olds = {tuple(r[i] for i in key): r for r in old}
        news = {tuple(r[i] for i in key): r for r in new}
        assert olds.keys() <= news.keys(), f"{what}: refusal counters vanished"
        for k, r in olds.items():
            assert news[k][first] == r[first] and news[k][count] >= r[count], f"{what}: counter {k} went back"
    # What /metrics counts of them (refusal_totals): a counter row may be added or counted up, nothing else.
    if "refusal_totals" in before:
        columns, old = before["refusal_totals"]
        _, new = after["refusal_totals"]
        count = columns.index("count")
        olds = {r[:count]: r[count] for r in old}
        news = {r[:count]: r[count] for r in new}
        assert olds.keys() <= news.keys() and all(news[k] >= n for k, n in olds.items()), f"{what}: refusal totals"


def secret_values(stack, fake_url):
    """Every secret the test configuration stores, the API tokens, and the key files' contents."""
    values = list(secrets(fake_url).values()) + list(stack.tokens.values())
    for key in ("secrets.kek", "signing.key"):
        p = stack.state_dir / "secrets" / key
        if p.exists():
            text = p.read_bytes()
            values += [v.decode() for v in text.replace(b":", b" ").split() if len(v) >= 16 and v.isascii()]
    return [v for v in values if v]


def all_logs(stack):
    """Every log file under the stack's directories."""
    return {str(p): p.read_text(errors="replace") for p in stack.state_dir.rglob("*.log")}


def doctor(stack, *args):
    import subprocess
    from conftest import BIN_DIR

    return subprocess.run(
        [str(BIN_DIR / "draven"), "doctor", "--state-dir", str(stack.state_dir), *args], capture_output=True, text=True
    )
