"""What the stand-in CI (infra/demo_provider.py) does with a dispatch: it runs the pipeline template's
deploy step the way GitHub Actions, GitLab CI or Bitbucket Pipelines would run it.

A dispatch names the template's pipeline and carries the variables draven sends; the stand-in reads
the checked-in template (infra/pipelines/), refuses what the real service would refuse (GitHub: an
input the workflow does not declare, a required one missing; GitLab: a pipeline whose rules leave no
job), and then, after it has answered, runs the deploy job in a fresh copy of the project (a
"checkout") with the environment the real CI would give it:

- the variables draven sent, mapped by the template (GitHub `${{ inputs.* }}` in the step's `env`,
  GitLab and Bitbucket pipeline variables over the template's declared defaults);
- the project's CI settings: `DRAVEN_URL` (a repository/CI variable) and `DRAVEN_RUNNER_SECRET`
  (a CI secret), given here as `variables` and `secret`;
- the service's own predefined variables (GITHUB_RUN_ID, CI_JOB_URL, BITBUCKET_BUILD_NUMBER, …),
  from which the runner builds the log link;
- the runner machine's environment (`machine_env`: PATH, HOME and whatever the caller adds).

Only what the templates use is understood: `uses: actions/checkout` (the copy), `run:` steps,
`${{ a.b || 'literal' }}` expressions, GitLab `rules: - if:` with `$VAR`, `&&`, `||`. Anything else
fails the run with a message naming it, rather than being skipped. A run's output goes to
`<log_dir>/job-<JOB_ID>.log` (a job dispatched again appends its next run); cancelling a run (the
provider's cancel call) stops its whole process tree.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote

import yaml

INFRA = Path(__file__).resolve().parent
TEMPLATES = {
    "github": INFRA / "pipelines" / "github-deploy.yml",
    "gitlab": INFRA / "pipelines" / "gitlab-ci.yml",
    "bitbucket": INFRA / "pipelines" / "bitbucket-pipelines.yml",
}
# Keys of a .gitlab-ci.yml that are not jobs.
GITLAB_KEYWORDS = {"stages", "variables", "default", "workflow", "include", "image", "services", "before_script",
                   "after_script", "cache", "spec"}


class Refused(Exception):
    """The provider refuses the dispatch: (status, body) as it would answer."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def dispatch_kind(method, path):
    """Which provider's dispatch call this is, or None."""
    if method != "POST":
        return None
    if "/actions/workflows/" in path and path.endswith("/dispatches"):
        return "github"
    if "/projects/" in path and (path.endswith("/trigger/pipeline") or path.endswith("/pipeline")):
        return "gitlab"
    if "/repositories/" in path and path.endswith("/pipelines/"):
        return "bitbucket"
    return None


def load_template(path):
    with open(path) as f:
        return yaml.safe_load(f)


# -- GitHub Actions expressions (the subset the template uses) ------------------------------------

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def evaluate(expression, context):
    """`a.b || c.d || 'literal'`: the first operand that is not empty, as GitHub does for strings."""
    value = ""
    for operand in (o.strip() for o in expression.split("||")):
        if re.fullmatch(r"'[^']*'", operand):
            value = operand[1:-1]
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*\.[A-Za-z_][A-Za-z0-9_-]*", operand):
            scope, name = operand.split(".")
            if scope not in context:
                raise ValueError(f"the stand-in CI does not know the context {scope!r} (in {expression!r})")
            value = context[scope].get(name, "")
        else:
            raise ValueError(f"the stand-in CI does not understand the expression {expression!r}")
        if value:
            return value
    return value


def substitute(text, context):
    return EXPRESSION.sub(lambda m: evaluate(m.group(1), context), str(text))


# -- GitLab rules ---------------------------------------------------------------------------------

def gitlab_rule(expression, env):
    """`$A && $B`, `$A || $B`, `$A == "x"`, `$A != "x"` (no parentheses): true or false."""
    def term(t):
        t = t.strip()
        m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)(?:\s*(==|!=)\s*[\"'](.*)[\"'])?", t)
        if not m:
            raise ValueError(f"the stand-in CI does not understand the rule {expression!r}")
        value = env.get(m.group(1), "")
        if m.group(2) == "==":
            return value == m.group(3)
        if m.group(2) == "!=":
            return value != m.group(3)
        return value != ""
    return any(all(term(t) for t in part.split("&&")) for part in expression.split("||"))


class Run:
    """One pipeline run: the job's step(s) as a process tree, its log, its outcome."""

    def __init__(self, provider, run_id, steps, env, workspace, log_path, checkout_ref=None):
        self.provider, self.id = provider, run_id
        self.steps = steps  # [(name, script, env)]
        self.env = env  # the job's environment (without the steps' own `env`)
        self.workspace, self.log_path, self.checkout_ref = workspace, log_path, checkout_ref
        self.process = None
        self.state, self.conclusion, self.returncode = "queued", None, None
        self.cancelled = False
        self.pids = []
        self.done = threading.Event()
        self.lock = threading.Lock()

    def start(self):
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        self.state = "in_progress"
        code = 0
        try:
            with open(self.log_path, "ab") as log:
                for name, script, env in self.steps:
                    log.write(f"::: {self.provider} run {self.id}: {name}\n".encode())
                    log.flush()
                    if script is None:
                        continue
                    with self.lock:
                        if self.cancelled:
                            break
                        path = self.workspace / f".step-{len(name)}-{time.monotonic_ns()}.sh"
                        path.write_text(script)
                        self.process = subprocess.Popen(
                            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)],
                            cwd=self.workspace / "repo", env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
                    code = self.process.wait()
                    if self.cancelled:
                        self._wait_for_tree()
                    if code != 0:
                        break
                log.write(f"::: {self.provider} run {self.id}: exit {code}\n".encode())
        except Exception as e:  # a template the stand-in cannot run: the run fails, saying why
            with open(self.log_path, "ab") as log:
                log.write(f"::: {self.provider} run {self.id}: {e}\n".encode())
            code = 1
        finally:
            self.returncode = code
            self.conclusion = "cancelled" if self.cancelled else ("success" if code == 0 else "failure")
            self.state = "completed"
            shutil.rmtree(self.workspace, ignore_errors=True)  # the checkout and the step scripts
            self.done.set()

    def _wait_for_tree(self, timeout=5):
        """As a CI does on a cancel: the step's other processes (the runner, stopping COMMAND and
        keeping its output) get their time to end before the workspace goes."""
        deadline = time.monotonic() + timeout
        for pid in self.pids:
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)

    def cancel(self):
        """Stops the run: SIGTERM to every process of the step's tree, SIGKILL after 5 s."""
        with self.lock:
            self.cancelled = True
            process = self.process
        if process is None or self.done.is_set():
            return
        pids = self.pids = tree(process.pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if self.done.wait(5):
                return
            pids = tree(process.pid) or pids

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def tree(root):
    """`root` and all its descendants (by /proc parent ids): a step's runner, the deploy it started in its own
    session, and theirs."""
    children = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(proc.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


class Pipelines:
    """The stand-in CI's pipelines for one project: `project` is the repository's content (a copy is
    each run's checkout), `variables` its CI variables (DRAVEN_URL), `secret` the runner secret it
    keeps as the CI secret DRAVEN_RUNNER_SECRET."""

    def __init__(self, project, variables, secret, templates=None, machine_env=None, log_dir=None,
                 web="https://ci.example"):
        self.project = Path(project)
        self.variables = dict(variables)
        self.secret = secret
        self.templates = dict(TEMPLATES, **(templates or {}))
        self.machine_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                            **(machine_env or {})}
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="draven-ci-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.web = web
        self.runs = {}  # (provider, run id) -> Run
        self.lock = threading.Lock()

    # -- the dispatch ------------------------------------------------------------------------
    def plan(self, provider, path, body, run_id):
        """The run a dispatch starts (not started yet), or Refused as the provider would answer."""
        workspace = Path(tempfile.mkdtemp(prefix=f"{provider}-{run_id}-", dir=self.log_dir))
        base = dict(self.machine_env, HOME=str(workspace), CI="true", TMPDIR=str(workspace))
        try:
            if provider == "github":
                run = self._github(path, body, run_id, workspace, base)
            elif provider == "gitlab":
                run = self._gitlab(path, body, run_id, workspace, base)
            else:
                run = self._bitbucket(path, body, run_id, workspace, base)
        except Exception:
            shutil.rmtree(workspace, ignore_errors=True)
            raise
        shutil.copytree(self.project, workspace / "repo", symlinks=True)
        job = run.env.get("JOB_ID") or (run.steps[-1][2] or {}).get("JOB_ID")
        if job and job.isdigit():  # one log per job: `make run` prints where job N's is
            run.log_path = self.log_dir / f"job-{job}.log"
        with self.lock:
            self.runs[(provider, str(run_id))] = run
        return run

    def _github(self, path, body, run_id, workspace, base):
        sent = json.loads(body)
        workflow = unquote(path.split("/actions/workflows/", 1)[1].rsplit("/dispatches", 1)[0])
        repo = path.split("/repos/", 1)[1].split("/actions/", 1)[0]
        doc = load_template(self.templates["github"])
        trigger = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
        declared = ((trigger or {}).get("workflow_dispatch") or {}).get("inputs") or {}
        inputs = sent.get("inputs") or {}
        unexpected = sorted(set(inputs) - set(declared))
        if unexpected:
            raise Refused(422, "Unexpected inputs provided: " + json.dumps(unexpected))
        for name, spec in declared.items():
            if (spec or {}).get("required") and name not in inputs:
                raise Refused(422, f"Required input '{name}' not provided")
            if name in inputs and not isinstance(inputs[name], str):
                raise Refused(422, f"Provided value for input '{name}' is not a string")
        values = {name: str((spec or {}).get("default", "")) for name, spec in declared.items()}
        values.update(inputs)
        env = {**base, "GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": str(run_id), "GITHUB_REPOSITORY": repo,
               "GITHUB_SERVER_URL": "https://github.example", "GITHUB_EVENT_NAME": "workflow_dispatch",
               "GITHUB_REF": sent.get("ref", ""), "GITHUB_WORKFLOW_REF": f"{repo}/.github/workflows/{workflow}",
               "GITHUB_WORKSPACE": str(workspace / "repo"), "RUNNER_TEMP": str(workspace)}
        context = {"inputs": values, "vars": self.variables, "secrets": {"DRAVEN_RUNNER_SECRET": self.secret},
                   "github": {"ref": sent.get("ref", ""), "repository": repo, "run_id": str(run_id)}}
        steps, checkout = [], None
        for job_name, job in (doc.get("jobs") or {}).items():
            for i, step in enumerate(job.get("steps") or []):
                name = step.get("name") or step.get("uses") or f"step {i + 1}"
                if "uses" in step:
                    if not str(step["uses"]).startswith("actions/checkout@"):
                        raise Refused(422, f"the stand-in CI cannot run the action {step['uses']!r}")
                    checkout = substitute((step.get("with") or {}).get("ref", sent.get("ref", "")), context)
                    steps.append((f"{job_name}: {name} (the project's copy)", None, None))
                    continue
                step_env = {**env, **{k: substitute(v, context) for k, v in (step.get("env") or {}).items()}}
                steps.append((f"{job_name}: {name}", substitute(step["run"], context), step_env))
        return Run("github", run_id, steps, env, workspace, self.log_dir / f"github-{run_id}.log", checkout)

    def _gitlab(self, path, body, run_id, workspace, base):
        if path.endswith("/trigger/pipeline"):
            form = parse_qs(body.decode(), keep_blank_values=True)
            ref = form.get("ref", [""])[0]
            sent = {k[len("variables["):-1]: v[0] for k, v in form.items() if k.startswith("variables[")}
        else:
            data = json.loads(body)
            ref = data.get("ref", "")
            sent = {v["key"]: v["value"] for v in data.get("variables") or []}
        doc = load_template(self.templates["gitlab"])

        def declared_values(variables):
            return {k: str(v.get("value", "") if isinstance(v, dict) else v) for k, v in (variables or {}).items()}

        project = path.split("/projects/", 1)[1].split("/", 1)[0]
        predefined = dict(GITLAB_CI="true", CI_PIPELINE_ID=str(run_id), CI_JOB_ID=str(run_id),
                          CI_JOB_URL=f"https://gitlab.example/{unquote(project)}/-/jobs/{run_id}",
                          CI_COMMIT_REF_NAME=ref, CI_PROJECT_DIR=str(workspace / "repo"), CI_PIPELINE_SOURCE="trigger")
        steps, env = [], None
        for name, job in doc.items():
            if name in GITLAB_KEYWORDS or name.startswith(".") or not isinstance(job, dict):
                continue
            # Precedence (lowest first): the template's global and job variables, the project's CI/CD
            # variables, the pipeline's own (what draven sent).
            job_env = {**base, **predefined, **declared_values(doc.get("variables")),
                       **declared_values(job.get("variables")), **self.variables,
                       "DRAVEN_RUNNER_SECRET": self.secret, **sent}
            rules = job.get("rules")
            if rules is not None and not any(gitlab_rule(r["if"], job_env) for r in rules if "if" in r):
                continue
            script = (doc.get("before_script") or []) + (job.get("before_script") or []) + job["script"]
            steps.append((name, "\n".join(script) + "\n", job_env))
            env = job_env
        if not steps:
            raise Refused(400, "No stages / jobs for this pipeline.")
        return Run("gitlab", run_id, steps, env, workspace, self.log_dir / f"gitlab-{run_id}.log", ref)

    def _bitbucket(self, path, body, run_id, workspace, base):
        data = json.loads(body)
        target = data.get("target") or {}
        selector = target.get("selector") or {}
        repo = path.split("/repositories/", 1)[1].rsplit("/pipelines/", 1)[0]
        doc = load_template(self.templates["bitbucket"])
        custom = ((doc.get("pipelines") or {}).get("custom") or {}).get(selector.get("pattern"))
        if selector.get("type") != "custom" or custom is None:
            raise Refused(400, f"no custom pipeline {selector.get('pattern')!r} in bitbucket-pipelines.yml")
        sent = {v["key"]: v["value"] for v in data.get("variables") or []}
        declared = {}
        for item in custom:
            for v in item.get("variables") or []:
                declared[v["name"]] = str(v.get("default", ""))
        ref_name = target.get("ref_name", "")
        env = {**base, **declared, **self.variables, "DRAVEN_RUNNER_SECRET": self.secret, **sent,
               "BITBUCKET_BUILD_NUMBER": str(run_id), "BITBUCKET_REPO_FULL_NAME": repo,
               "BITBUCKET_CLONE_DIR": str(workspace / "repo"),
               "BITBUCKET_COMMIT": (target.get("commit") or {}).get("hash", ""),
               ("BITBUCKET_TAG" if target.get("ref_type") == "tag" else "BITBUCKET_BRANCH"): ref_name}
        steps = []
        for item in custom:
            step = item.get("step")
            if step:
                steps.append((step.get("name", "step"), "\n".join(step["script"]) + "\n", env))
        return Run("bitbucket", run_id, steps, env, workspace, self.log_dir / f"bitbucket-{run_id}.log", ref_name)

    # -- after the dispatch ---------------------------------------------------------------------
    def find(self, provider, run_id):
        with self.lock:
            return self.runs.get((provider, str(run_id)))

    def all(self):
        with self.lock:
            return list(self.runs.values())

    def wait_idle(self, timeout=60):
        """Waits until every run has ended; returns the runs."""
        deadline = time.monotonic() + timeout
        for run in self.all():
            assert run.done.wait(max(0, deadline - time.monotonic())), f"{run.provider} run {run.id} still going"
        return self.all()

    def stop(self):
        """Cancels every run still going, all at once (the stand-in is stopping)."""
        threads = [threading.Thread(target=run.cancel) for run in self.all() if not run.done.is_set()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
