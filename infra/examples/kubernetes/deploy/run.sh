#!/bin/sh
# deploy/run.sh for a project deployed to Kubernetes with Helm (`helm` and `kubectl` on PATH, a
# kubeconfig the pipeline provides). The draven runner starts it with the runner contract's
# variables (README, "The runner contract"):
#
#   DRAVEN_TASK=deploy        helm upgrade --install RELEASE CHART --namespace NS --set image.tag=TAG --wait,
#                             then kubectl rollout status
#   DRAVEN_TASK=rollback      the same upgrade with the tag of the release draven names (REF, DRAVEN_SHA)
#   DRAVEN_TASK=deploy:info   helm status and history, kubectl get pods and recent events (changes nothing)
#
# TAG is the image tag built for the ref: DRAVEN_SHA when known, else the tag or branch name ('/'
# becomes '-'). A rollback upgrades to the release draven names rather than running
# `helm rollback RELEASE` (which only knows "the revision before", and after a deploy that failed
# before Helm recorded a revision that is one too far): the result is the same chart and tag.
# Settings (CI variables): HELM_RELEASE (default: app), HELM_CHART (default: ./chart),
# KUBE_NAMESPACE (default: ENV), HELM_TIMEOUT (default: 10m).
# Release: "revision N (TAG)" of the Helm release goes to $DRAVEN_RELEASE_FILE. Exit status: Helm's
# or kubectl's, 0 when the rollout completed.
set -eu

task=${DRAVEN_TASK:-deploy}
env=${ENV:?ENV is not set}
release=${HELM_RELEASE:-app}
chart=${HELM_CHART:-./chart}
namespace=${KUBE_NAMESPACE:-$env}
timeout=${HELM_TIMEOUT:-10m}

name=${REF:?REF is not set}
name=${name#refs/heads/}
name=${name#refs/tags/}
tag=${DRAVEN_SHA:-$(printf '%s' "$name" | tr '/' '-')}

step() {
    printf '%s %s %s\n' "$1" "$2" "$3" >"${DRAVEN_PROGRESS_FILE:-/dev/null}"
    echo "deploy/run.sh: $3"
}

upgrade() {
    step upgrade 20 "helm upgrade $release to $tag in $namespace"
    helm upgrade --install "$release" "$chart" --namespace "$namespace" --create-namespace \
        --set image.tag="$tag" --wait --timeout "$timeout"
    step rollout 70 "waiting for deployment/$release to roll out"
    kubectl rollout status "deployment/$release" --namespace "$namespace" --timeout "$timeout"
    revision=$(helm status "$release" --namespace "$namespace" -o json | sed -n 's/.*"version": *\([0-9][0-9]*\).*/\1/p' |
        head -n 1)
    if [ -n "${DRAVEN_RELEASE_FILE:-}" ]; then
        echo "revision ${revision:-?} ($tag)" >"$DRAVEN_RELEASE_FILE"
    fi
    step finished 100 "$release is at revision ${revision:-?} ($tag)"
}

case $task in
    deploy | rollback)
        upgrade
        ;;
    deploy:info)
        helm status "$release" --namespace "$namespace" || true
        helm history "$release" --namespace "$namespace" --max 5 || true
        kubectl get pods --namespace "$namespace" -l "app.kubernetes.io/instance=$release" -o wide || true
        kubectl get events --namespace "$namespace" --sort-by=.lastTimestamp | tail -n 20 || true
        ;;
    *)
        echo "deploy/run.sh: unknown task $task (deploy, rollback or deploy:info)" >&2
        exit 64
        ;;
esac
