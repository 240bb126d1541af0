"""The example deploy/run.sh scripts (infra/examples/) keep the runner contract: the task in
DRAVEN_TASK becomes the right Deployer or Helm/kubectl command, progress goes to
DRAVEN_PROGRESS_FILE, the release to DRAVEN_RELEASE_FILE, and the tool's failure is the script's.
`dep`, `helm` and `kubectl` are small stand-ins on PATH that record how they were called and answer
as the real tools print. (The demo's own run.sh runs for real in test_full_loop.py and test_demo.py.)"""
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

EXAMPLES = ROOT / "infra" / "examples"
SHA = "0123456789abcdef0123456789abcdef01234567"

DEP = r"""#!/bin/sh
echo "dep $*" >>"$CALLS"
case "$1" in
  run)
    case "$2" in
      *readlink*) echo "[web1] /var/www/shop/releases/42" ;;
      *REVISION*) echo "[web1] ${STUB_REVISION:-}" ;;
    esac
    exit 0 ;;
esac
for t in deploy:info deploy:setup deploy:lock deploy:release deploy:update_code deploy:symlink deploy:success; do
  echo "task $t"
done
exit "${STUB_EXIT:-0}"
"""
HELM = r"""#!/bin/sh
echo "helm $*" >>"$CALLS"
case "$1" in
  status) echo '{"name":"app","info":{"status":"deployed"},"version": 3,"namespace":"staging"}' ;;
esac
[ "$1" = upgrade ] && exit "${STUB_EXIT:-0}"
exit 0
"""
KUBECTL = r"""#!/bin/sh
echo "kubectl $*" >>"$CALLS"
exit 0
"""


@pytest.fixture()
def world(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("dep", DEP), ("helm", HELM), ("kubectl", KUBECTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)

    def run(example, task, env="staging", ref="refs/tags/v1.2.0", **extra):
        files = {k: tmp_path / k for k in ("calls", "progress", "release")}
        for f in files.values():
            f.unlink(missing_ok=True)
        environ = dict(PATH=f"{bin_dir}:/usr/bin:/bin", CALLS=str(files["calls"]), ENV=env, REF=ref,
                       DRAVEN_TASK=task, DRAVEN_PROGRESS_FILE=str(files["progress"]),
                       DRAVEN_RELEASE_FILE=str(files["release"]), **extra)
        done = subprocess.run([str(EXAMPLES / example / "deploy" / "run.sh")], env=environ, cwd=tmp_path,
                              capture_output=True, text=True)
        read = {k: (f.read_text() if f.exists() else None) for k, f in files.items()}
        return done, read

    return run


def test_deployer_deploy_runs_dep_deploy_with_the_revision_and_reports_progress_and_release(world):
    done, files = world("deployer", "deploy", env="prod", DRAVEN_SHA=SHA)
    assert done.returncode == 0, done.stderr
    assert files["calls"].splitlines() == [f"dep deploy prod --revision={SHA}", "dep run readlink {{current_path}} prod"]
    step, percent, message = files["progress"].strip().split(" ", 2)
    assert step == "deploy:success" and 0 < int(percent) < 100 and message == "dep deploy prod"
    assert files["release"] == "42\n"
    assert "task deploy:symlink" in done.stdout  # Deployer's output is the log


def test_deployer_deploy_without_a_sha_deploys_the_ref(world):
    done, files = world("deployer", "deploy", ref="refs/heads/main")
    assert done.returncode == 0 and files["calls"].splitlines()[0] == "dep deploy staging --revision=refs/heads/main"


def test_deployer_failure_is_the_scripts_failure(world):
    done, files = world("deployer", "deploy", STUB_EXIT="3")
    assert done.returncode == 3, done
    assert files["progress"].startswith("deploy:success")  # what it got to before failing


def test_deployer_rollback_runs_dep_rollback(world):
    done, files = world("deployer", "rollback", DRAVEN_SHA=SHA, STUB_REVISION="fedcba")
    assert done.returncode == 0, done.stderr
    assert "dep rollback staging" in files["calls"].splitlines() and files["release"] == "42\n"


def test_deployer_rollback_after_a_deploy_that_never_went_live_does_nothing(world):
    done, files = world("deployer", "rollback", DRAVEN_SHA=SHA, STUB_REVISION=SHA)
    assert done.returncode == 0, done.stderr
    assert not any(c.startswith("dep rollback") for c in files["calls"].splitlines())
    assert "nothing to roll back" in done.stdout


def test_deployer_diagnostic_runs_deploy_info(world):
    done, files = world("deployer", "deploy:info", env="prod")
    assert done.returncode == 0 and files["calls"].splitlines() == ["dep deploy:info prod"]
    assert files["release"] is None


def test_helm_deploy_upgrades_to_the_refs_tag_and_waits_for_the_rollout(world):
    done, files = world("kubernetes", "deploy")
    assert done.returncode == 0, done.stderr
    calls = files["calls"].splitlines()
    assert calls[0] == ("helm upgrade --install app ./chart --namespace staging --create-namespace "
                        "--set image.tag=v1.2.0 --wait --timeout 10m")
    assert calls[1] == "kubectl rollout status deployment/app --namespace staging --timeout 10m"
    assert files["release"] == "revision 3 (v1.2.0)\n"
    assert files["progress"].startswith("finished 100 ")


def test_helm_rollback_upgrades_to_the_named_release_and_diagnostic_only_looks(world):
    done, files = world("kubernetes", "rollback", ref="refs/heads/release/7", DRAVEN_SHA=SHA, HELM_RELEASE="shop")
    assert done.returncode == 0, done.stderr
    assert f"--set image.tag={SHA}" in files["calls"].splitlines()[0] and " shop ./chart " in files["calls"]
    done, files = world("kubernetes", "deploy:info")
    assert done.returncode == 0
    assert all(c.split()[1] in {"status", "history", "get"} for c in files["calls"].splitlines()), files["calls"]


def test_helm_failure_is_the_scripts_failure(world):
    done, files = world("kubernetes", "deploy", STUB_EXIT="1")
    assert done.returncode == 1 and files["release"] is None


@pytest.mark.parametrize("example", ["demo", "deployer", "kubernetes"])
def test_an_unknown_task_is_refused(world, example):
    done, _ = world(example, "migrate")
    assert done.returncode == 64 and "unknown task migrate" in done.stderr
