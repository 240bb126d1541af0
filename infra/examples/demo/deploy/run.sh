#!/bin/sh
# The demo project's deploy/run.sh: what `make run`'s stand-in CI runs for shop, through the draven
# runner, as a project's pipeline would. It deploys nothing: it goes through a few steps, reporting
# each as the runner contract says (README, "The runner contract"), and succeeds, unless the ref
# says otherwise:
#   a branch fail-*   fails at the migrate step (exit 1): the environment's on_failure applies
#   a branch slow-*   takes DEMO_SLOW_STEP_SECONDS (default 15) a step: time to cancel it
#   anything else     takes DEMO_STEP_SECONDS (default 1) a step
# Tasks ($DRAVEN_TASK): deploy, rollback (back to REF, the release draven names), deploy:info.
set -eu

task=${DRAVEN_TASK:-deploy}
name=${REF:?REF is not set}
name=${name#refs/heads/}
name=${name#refs/tags/}
pause=${DEMO_STEP_SECONDS:-1}
case $name in
    slow-*) pause=${DEMO_SLOW_STEP_SECONDS:-15} ;;
esac

# step NAME PERCENT MESSAGE: the progress line the runner sends with its next heartbeat, and a log line.
step() {
    printf '%s %s %s\n' "$1" "$2" "$3" >"${DRAVEN_PROGRESS_FILE:-/dev/null}"
    echo "[$task] $1 ($2%): $3"
    sleep "$pause"
}

release() {
    id="$ENV-$(date -u +%Y%m%dT%H%M%SZ)-$name"
    [ -n "${DRAVEN_RELEASE_FILE:-}" ] && echo "$id" >"$DRAVEN_RELEASE_FILE"
    echo "[$task] release $id is live on $ENV"
}

case $task in
    deploy)
        step fetch 10 "fetching $name${DRAVEN_SHA:+ at $DRAVEN_SHA}"
        step build 40 "building $name"
        step migrate 70 "migrating the $ENV database"
        case $name in
            fail-*)
                echo "[$task] migrate: the migration failed (the demo fails $name on purpose)" >&2
                exit 1
                ;;
        esac
        step switch 90 "switching $ENV to the new release"
        release
        ;;
    rollback)
        step fetch 30 "fetching the release to return to: $name${DRAVEN_SHA:+ at $DRAVEN_SHA}"
        step switch 80 "switching $ENV back to $name"
        release
        ;;
    deploy:info)
        echo "[$task] $ENV: a demo environment on this machine; nothing is deployed anywhere"
        echo "[$task] asked about: $name${DRAVEN_SHA:+ at $DRAVEN_SHA}"
        ;;
    *)
        echo "deploy/run.sh: unknown task $task (deploy, rollback or deploy:info)" >&2
        exit 64
        ;;
esac
