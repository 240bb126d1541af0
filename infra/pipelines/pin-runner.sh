#!/bin/sh
# pin-runner.sh [RUNNER]: pins the pipeline templates to a runner — rewrites the DRAVEN_RUNNER_SHA256
# each of them checks the file from GET /runner.sh against — and prints the pin. RUNNER defaults to
# infra/runner/draven-runner.sh, the file draven serves. Run it after the runner changed (the
# templates' test says when), and read the runner's diff first: the pin is what a pipeline trusts.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
runner=${1:-$here/../runner/draven-runner.sh}
sha=$(sha256sum "$runner" | cut -d' ' -f1)
for template in "$here/github-deploy.yml" "$here/gitlab-ci.yml" "$here/bitbucket-pipelines.yml"; do
    sed -i -E "s/(DRAVEN_RUNNER_SHA256(: \"?|=))[0-9a-f]{64}/\\1$sha/" "$template"
    grep -q "$sha" "$template" || { echo "pin-runner.sh: no DRAVEN_RUNNER_SHA256 pin in $template" >&2; exit 1; }
done
version=$(sed -n 's/^# draven-runner version \([0-9][0-9]*\)$/\1/p' "$runner" | head -n 1)
echo "templates pin runner version ${version:-?}, sha256 $sha"
