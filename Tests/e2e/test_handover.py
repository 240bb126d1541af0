"""The delivery service of `draven sweep --every` (CLI/draven/DeliveryService.swift): functions
hand it the outbox rows they committed over `<db>-deliver`, a datagram socket, and fall back to
exec'ing draven-deliver when nothing is bound to it. Through real nginx + fcgiwrap, with a fake
provider on 127.0.0.1.

The sweep here passes once a minute: a dispatch that arrives within seconds was delivered by the
service, not by a pass. With `DELIVER=/bin/true` a function that execs "the deliverer" delivers
nothing, so only the service can have sent it."""
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BIN_DIR, ROOT, launch

sys.path.insert(0, str(ROOT / "infra"))
from demo_provider import FakeProvider  # noqa: E402

SECRETS = {"gh-token": "ghp_canary0GITHUB0aa11bb22cc33", "gl-trigger-token": "x", "gl-token": "y", "bb-token": "z"}


@pytest.fixture()
def fake():
    f = FakeProvider().start()
    yield f
    f.stop()


def config(fake):
    return (Path(__file__).parent / "draven.dispatch.toml").read_text().replace("@FAKE@", fake.url)


def socket_path(stack):
    return Path(stack.state_dir) / "draven.db-deliver"


def wait_bound(stack):
    path = socket_path(stack)
    deadline = time.monotonic() + 10
    while not path.exists():
        assert time.monotonic() < deadline, "the sweep service never bound its delivery socket"
        time.sleep(0.05)
    return path


def dispatches(fake, job_id):
    return [r for r in fake.received("/repos/") if f'"job_id":"{job_id}"' in r["body"].decode()]


def test_the_sweep_service_delivers_what_a_function_hands_over(fake):
    with launch(config(fake), people=("alice",), secrets=SECRETS, deliver="/bin/true", sweep_every="60s") as s:
        path = wait_bound(s)
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600  # only the functions' user may send
        time.sleep(0.5)  # past the service's first pass
        jobs = [s.deploy("alice", "ghapp", env, "refs/heads/main").json for env in ("ok", "flaky", "slow")]
        for job in jobs:
            assert s.wait_for(job["id"], {"running", "failed"}, timeout=10) == "running"
            assert len(dispatches(fake, job["id"])) == 1  # exactly once
        assert s.rows("SELECT count(*) FROM outbox WHERE state != 'delivered'") == [(0,)]


def kill_sweep(stack):
    """SIGKILLs the stack's sweep service and waits until every one of its threads is gone (the leader turns
    zombie before its delivery workers have exited, and they hold the socket open until they do): its socket
    file stays."""
    pid = int((Path(stack.state_dir) / "run" / "sweep.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10

    def alive_threads():
        try:
            return [t for t in os.listdir(f"/proc/{pid}/task")
                    if Path(f"/proc/{pid}/task/{t}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
        except (FileNotFoundError, ProcessLookupError):
            return []
    while alive_threads():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # The kernel may close the last descriptor of the socket a moment after the last thread is gone.
    while served(socket_path(stack)):
        assert time.monotonic() < deadline, "the killed sweep's socket is still served"
        time.sleep(0.01)


def test_with_the_service_dead_functions_exec_the_deliverer(fake):
    with launch(config(fake), people=("alice",), secrets=SECRETS, sweep_every="60s") as s:
        path = wait_bound(s)
        kill_sweep(s)
        assert path.exists() and not served(path)
        job = s.deploy("alice", "ghapp", "ok", "refs/heads/main").json
        assert s.wait_for(job["id"], {"running", "failed"}, timeout=10) == "running"  # draven-deliver sent it
        assert len(dispatches(fake, job["id"])) == 1


def test_a_new_sweep_takes_the_socket_over_and_a_second_one_leaves_it(fake):
    with launch(config(fake), people=("alice",), secrets=SECRETS, deliver="/bin/true", sweep_every="60s") as s:
        path = wait_bound(s)
        kill_sweep(s)
        stranded = s.deploy("alice", "ghapp", "ok", "refs/heads/main")
        assert stranded.status == 201  # answered at once; its row waits for a deliverer
        assert s.rows("SELECT state FROM outbox WHERE job_id = ?", stranded.json["id"]) == [("pending",)]

        cmd = [str(BIN_DIR / "draven"), "sweep", "--every", "60s", "--state-dir", str(s.state_dir)]
        first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        second = None
        try:
            deadline = time.monotonic() + 10
            while not served(path):
                assert time.monotonic() < deadline, "the new sweep did not take the socket over"
                time.sleep(0.05)
            # Its first pass delivers the stranded row (that is the pass, not the socket).
            assert s.wait_for(stranded.json["id"], {"running", "failed"}, timeout=10) == "running"
            second = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(1)
            second.terminate()
            assert "another process serves it" in second.communicate(timeout=10)[1]
            assert served(path)
            job = s.deploy("alice", "ghapp", "flaky", "refs/heads/main").json
            assert s.wait_for(job["id"], {"running", "failed"}, timeout=10) == "running"  # the first took it
            assert len(dispatches(fake, job["id"])) == 1
        finally:
            for p in (first, second):
                if p and p.poll() is None:
                    p.terminate()
                    p.wait(timeout=10)


def served(path):
    """Whether a process is bound to the socket at `path` (an empty datagram is taken)."""
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        try:
            probe.sendto(b"", str(path))
            return True
        except (ConnectionRefusedError, FileNotFoundError):
            return False
