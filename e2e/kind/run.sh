#!/usr/bin/env bash
# The operator end to end on a kind cluster, for machines with Docker and kind:
# build the image, install the chart, then run manifests/examples/cluster-3-members.yaml
# through a write, scale 3 → 5 → 3, the loss of a member pod and an upgrade, checking the key
# written at the start after each step.
#
#   e2e/kind/run.sh
#
# KIND_CLUSTER   kind cluster to use (default oxcd-e2e); created, and deleted at the end, when
#                it does not exist. An existing one is kept; only what this run made goes.
# KEEP=1         leave everything in place (`kind export kubeconfig --name $KIND_CLUSTER`)
# TIMEOUT        seconds for each wait (default 600)
#
# Needs docker and kind on PATH; helm and kubectl come from scripts/helm-tools. The chart's
# crds/ must hold the CRD (scripts/render-manifests writes it).
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

cluster=${KIND_CLUSTER:-oxcd-e2e}
timeout=${TIMEOUT:-600}
image=ghcr.io/oxcd/oxcd
operator_ns=oxcd-system
ns=oxcd-e2e
example=manifests/examples/cluster-3-members.yaml
name=demo # the example's metadata.name
members="app.kubernetes.io/name=oxcd,app.kubernetes.io/instance=$name"

die() {
    echo "e2e: $*" >&2
    exit 1
}
step() { echo "--- $*" >&2; }

for tool in docker kind; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
[[ -s charts/oxcd-operator/crds/etcdcluster.yaml ]] ||
    die "charts/oxcd-operator/crds/etcdcluster.yaml is missing: run scripts/render-manifests"
grep -q "^  name: $name\$" "$example" || die "$example no longer names its cluster $name"
PATH="$(scripts/helm-tools):$PATH"

scratch=$(mktemp -d)
# A kubeconfig of our own: the user's current context is never read or changed.
export KUBECONFIG=$scratch/kubeconfig
created_cluster=false

on_exit() {
    local status=$?
    if ((status != 0)); then
        echo "e2e: failed; the state of the cluster:" >&2
        kubectl get ec,pods,pvc,svc,pdb -n "$ns" -o wide >&2 || true
        kubectl get events -n "$ns" --sort-by=.lastTimestamp >&2 || true
        kubectl logs -n "$operator_ns" deployment/oxcd-operator --tail=200 >&2 || true
    fi
    if [[ ${KEEP:-} == 1 ]]; then
        echo "e2e: KEEP=1, leaving kind cluster $cluster as it is" >&2
    elif $created_cluster; then
        kind delete cluster --name "$cluster" >&2 || true
    elif [[ -s $KUBECONFIG ]]; then
        kubectl delete namespace "$ns" --ignore-not-found --wait=true >&2 || true
        helm uninstall oxcd-operator -n "$operator_ns" --ignore-not-found >&2 || true
    fi
    rm -rf "$scratch"
    exit "$status"
}
trap on_exit EXIT

# Prints `oxcdctl --endpoints <client Service> "$@"`'s output, run in a pod of the image.
# A pod waited on and then read, rather than `kubectl run -i`, whose attach can miss the
# output of a command that ends at once. Named by the clock, not a counter: callers run this
# in $(...), a subshell whose counter would never move on.
oxcdctl() {
    local pod phase=""
    pod=oxcdctl-$(date +%s%N)
    kubectl run -n "$ns" "$pod" --restart=Never --image="$image:e2e" \
        --image-pull-policy=IfNotPresent --command -- \
        /usr/local/bin/oxcdctl --endpoints "http://$name-client:2379" "$@" >/dev/null
    local deadline=$((SECONDS + 120))
    until [[ $phase == Succeeded || $phase == Failed ]] || ((SECONDS > deadline)); do
        sleep 1
        phase=$(kubectl get pod -n "$ns" "$pod" -o 'jsonpath={.status.phase}' || true)
    done
    kubectl logs -n "$ns" "$pod" || true
    kubectl delete pod -n "$ns" "$pod" --wait=false >/dev/null
    [[ $phase == Succeeded ]] || die "oxcdctl $* ended in phase '${phase:-none}'"
}

# The number of member pods that are Ready.
ready_members() {
    kubectl get pods -n "$ns" -l "$members" \
        -o 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
        grep -c '^True$' || true
}

# The image of each member pod, once each.
member_images() {
    kubectl get pods -n "$ns" -l "$members" \
        -o 'jsonpath={range .items[*]}{.spec.containers[0].image}{"\n"}{end}' | sort -u
}

# Polls until `$2...` prints $1, for at most $timeout seconds.
wait_for_output() {
    local want=$1 deadline=$((SECONDS + timeout))
    shift
    until [[ $("$@") == "$want" ]]; do
        ((SECONDS < deadline)) || die "waited ${timeout}s for '$*' to print $want; it prints $("$@")"
        sleep 2
    done
}

expect_key() {
    local got
    got=$(oxcdctl get e2e-key --print-value-only)
    [[ $got == e2e-value ]] || die "e2e-key is '$got' $1, not e2e-value"
}

wait_available() {
    kubectl wait -n "$ns" --for=condition=Available "ec/$name" --timeout="${timeout}s"
}

step "kind cluster $cluster"
if kind get clusters | grep -qx "$cluster"; then
    kind export kubeconfig --name "$cluster" --kubeconfig "$KUBECONFIG"
else
    created_cluster=true
    kind create cluster --name "$cluster" --kubeconfig "$KUBECONFIG" --wait 2m
fi

step "image $image:e2e (and the same image as :e2e2, the upgrade's target)"
DOCKER_BUILDKIT=1 docker build -t "$image:e2e" .
docker tag "$image:e2e" "$image:e2e2"
kind load docker-image --name "$cluster" "$image:e2e" "$image:e2e2"

step "operator"
# The annotation rolls the operator when a kept cluster gets a rebuilt image under the same tag.
helm upgrade --install oxcd-operator charts/oxcd-operator --namespace "$operator_ns" \
    --create-namespace --set image.tag=e2e \
    --set-string "podAnnotations.oxcd\\.io/e2e-image=$(docker image inspect -f '{{.Id}}' "$image:e2e")" \
    --wait --timeout "${timeout}s"

step "3 members"
# A fresh namespace, also when a kept cluster still has the last run's.
kubectl delete namespace "$ns" --ignore-not-found --wait=true
kubectl create namespace "$ns"
sed 's/^  version: .*/  version: "e2e"/' "$example" >"$scratch/cluster.yaml"
grep -q '^  version: "e2e"$' "$scratch/cluster.yaml" || die "$example has no spec.version to set"
kubectl apply -n "$ns" -f "$scratch/cluster.yaml"
wait_available
oxcdctl put e2e-key e2e-value >&2
expect_key "just after the put"

step "scale to 5"
kubectl scale -n "$ns" "ec/$name" --replicas=5
kubectl wait -n "$ns" --for=jsonpath='{.status.readyReplicas}'=5 "ec/$name" --timeout="${timeout}s"
expect_key "at 5 members"

step "scale back to 3"
kubectl scale -n "$ns" "ec/$name" --replicas=3
kubectl wait -n "$ns" --for=jsonpath='{.status.readyReplicas}'=3 "ec/$name" --timeout="${timeout}s"
wait_for_output 3 ready_members
wait_available
expect_key "after scaling down"

step "lose a member pod"
victim=$(kubectl get pods -n "$ns" -l "$members" -o 'jsonpath={.items[0].metadata.name}')
# --wait: returns once the pod is gone, so three Ready members below means a replacement.
kubectl delete pod -n "$ns" "$victim" --wait=true
wait_for_output 3 ready_members
wait_available
expect_key "after losing $victim"

step "upgrade to e2e2"
kubectl patch -n "$ns" "ec/$name" --type=merge -p '{"spec":{"version":"e2e2"}}'
kubectl wait -n "$ns" --for=jsonpath='{.status.currentVersion}'=e2e2 "ec/$name" --timeout="${timeout}s"
wait_for_output "$image:e2e2" member_images
wait_for_output 3 ready_members
wait_available
expect_key "after the upgrade"

echo "e2e: passed" >&2
