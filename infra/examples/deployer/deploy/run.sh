#!/bin/sh
# deploy/run.sh for a project deployed with Deployer (https://deployer.org, `dep` on PATH, a
# deploy.php whose hosts are named or labelled after draven's environments). The draven runner
# starts it with the runner contract's variables (README, "The runner contract"):
#
#   DRAVEN_TASK=deploy        dep deploy ENV --revision=REV   REV: DRAVEN_SHA when known, else REF
#   DRAVEN_TASK=rollback      dep rollback ENV                (see "Rollbacks" below)
#   DRAVEN_TASK=deploy:info   dep deploy:info ENV             (a diagnostic: looks, changes nothing)
#
# Progress: each `task NAME` line Deployer prints becomes the step the next heartbeat reports, with
# the share of the deploy recipe's tasks done so far. Release: after a deploy or a rollback, the
# name of the release `current` points to (`dep run 'readlink {{current_path}}'`) goes to
# $DRAVEN_RELEASE_FILE. The exit status is Deployer's: 0 succeeded, anything else failed.
#
# Rollbacks. `dep rollback` moves `current` to the release before it on each host. After a deploy
# that failed before Deployer switched `current` (most failures: the symlink is among the last
# tasks), the hosts still run the release draven rolls back to, and one more step back would go too
# far: so when the hosts' current release already has the revision draven names (DRAVEN_SHA, read
# from the release's REVISION file), there is nothing to roll back and this says so.
set -eu

task=${DRAVEN_TASK:-deploy}
env=${ENV:?ENV is not set}
dep=${DEP:-dep}

# The default `deploy` recipe's tasks (Deployer 7), in order: the progress percentage's scale.
TASKS="deploy:info deploy:setup deploy:lock deploy:release deploy:update_code deploy:shared deploy:writable
deploy:vendors deploy:clear_paths deploy:symlink deploy:unlock deploy:cleanup deploy:success"

progress() {
    n=0
    total=$(echo "$TASKS" | wc -w)
    while IFS= read -r line; do
        printf '%s\n' "$line"
        case $line in
            task\ *)
                name=${line#task }
                n=$((n + 1))
                percent=$((n * 100 / (total + 1)))
                printf '%s %s %s\n' "$name" "$percent" "dep $task $env" >"${DRAVEN_PROGRESS_FILE:-/dev/null}"
                ;;
        esac
    done
}

# run_dep ARGS...: dep with its output through progress(); returns dep's status (sh has no pipefail, and
# under set -e a failing command would end the group before it could write its status).
run_dep() {
    status_file=$(mktemp)
    { "$dep" "$@" 2>&1 && echo 0 >"$status_file" || echo $? >"$status_file"; } | progress
    status=$(cat "$status_file")
    rm -f "$status_file"
    return "$status"
}

# The hosts' answer to a command, without Deployer's "[host] " prefix (the first host's).
on_host() {
    "$dep" run "$1" "$env" 2>/dev/null | sed -n 's/^\[[^]]*\] //p' | head -n 1
}

record_release() {
    current=$(on_host 'readlink {{current_path}}') || current=""
    if [ -n "$current" ] && [ -n "${DRAVEN_RELEASE_FILE:-}" ]; then
        basename "$current" >"$DRAVEN_RELEASE_FILE"
    fi
}

case $task in
    deploy)
        run_dep deploy "$env" --revision="${DRAVEN_SHA:-${REF:?REF is not set}}"
        record_release
        ;;
    rollback)
        if [ -n "${DRAVEN_SHA:-}" ] && [ "$(on_host 'cat {{current_path}}/REVISION')" = "$DRAVEN_SHA" ]; then
            echo "deploy/run.sh: $env already runs $DRAVEN_SHA (the failed deploy never went live): nothing to roll back"
        else
            run_dep rollback "$env"
        fi
        record_release
        ;;
    deploy:info)
        run_dep deploy:info "$env"
        ;;
    *)
        echo "deploy/run.sh: unknown task $task (deploy, rollback or deploy:info)" >&2
        exit 64
        ;;
esac
