#!/usr/bin/env bash
# End-to-end: a kind cluster with KubeVirt (software emulation), CDI and Multus, the operator
# image built from this checkout, manifests/ applied, then `pytest tests/e2e -m e2e`.
# Usage: tests/e2e/run.sh [pytest args...]      (docs/e2e.md; `nox -s e2e` calls this)
set -euo pipefail
cd "$(dirname "$0")/../.."

# Pinned versions: bump deliberately, together, and note it in docs/e2e.md.
KUBEVIRT_VERSION="${KUBEVIRT_VERSION:-v1.9.0}"
CDI_VERSION="${CDI_VERSION:-v1.66.0}"
MULTUS_VERSION="${MULTUS_VERSION:-v4.2.0}"
CLUSTER="${KIND_CLUSTER_NAME:-wukong-e2e}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"          # empty: the default of the installed kind
IMAGE="localhost/wukong:e2e"                      # must match tests/e2e/overlay
KEEP_CLUSTER="${KEEP_CLUSTER:-0}"                 # 1: leave the cluster for the next run
ENGINE="${CONTAINER_ENGINE:-docker}"              # docker or podman (kind follows KIND_EXPERIMENTAL_PROVIDER)

KUBEVIRT_URL="https://github.com/kubevirt/kubevirt/releases/download/${KUBEVIRT_VERSION}"
CDI_URL="https://github.com/kubevirt/containerized-data-importer/releases/download/${CDI_VERSION}"
MULTUS_URL="https://raw.githubusercontent.com/k8snetworkplumbingwg/multus-cni/${MULTUS_VERSION}/deployments/multus-daemonset-thick.yml"

step() { printf '\n=== %s\n' "$*"; }
for tool in "$ENGINE" kind kubectl; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool not found on PATH (see docs/e2e.md)" >&2; exit 2; }
done

# Its own kubeconfig: the run never touches ~/.kube/config or its current context.
export KUBECONFIG="${E2E_KUBECONFIG:-${XDG_CACHE_HOME:-$HOME/.cache}/wukong/e2e/kubeconfig}"
mkdir -p "$(dirname "$KUBECONFIG")"

cleanup() {
  local status=$?
  if [[ $status -ne 0 ]]; then
    step "failed ($status): what the cluster shows"
    kubectl get wukongs,virtualmachines,virtualmachineinstances,datavolumes,pvc -A -o wide || true
    kubectl -n wukong-system logs deployment/wukong --all-containers --tail=200 || true
  fi
  if [[ "$KEEP_CLUSTER" != 1 ]]; then
    step "deleting kind cluster $CLUSTER (KEEP_CLUSTER=1 keeps it)"
    kind delete cluster --name "$CLUSTER" || true
  fi
}
trap cleanup EXIT

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  step "reusing kind cluster $CLUSTER"
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
else
  step "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 120s \
    ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
fi

step "installing KubeVirt $KUBEVIRT_VERSION (software emulation: no /dev/kvm needed)"
kubectl apply -f "$KUBEVIRT_URL/kubevirt-operator.yaml"
kubectl wait crd/kubevirts.kubevirt.io --for condition=Established --timeout=60s
kubectl apply -f - <<YAML
apiVersion: kubevirt.io/v1
kind: KubeVirt
metadata:
  name: kubevirt
  namespace: kubevirt
spec:
  configuration:
    developerConfiguration:
      useEmulation: true
      featureGates: [HotplugVolumes, ExpandDisks]
YAML

step "installing CDI $CDI_VERSION"
kubectl apply -f "$CDI_URL/cdi-operator.yaml"
kubectl wait crd/cdis.cdi.kubevirt.io --for condition=Established --timeout=60s
kubectl apply -f "$CDI_URL/cdi-cr.yaml"

step "installing Multus $MULTUS_VERSION"
kubectl apply -f "$MULTUS_URL"

step "building $IMAGE and loading it into kind"
"$ENGINE" build -f Containerfile -t "$IMAGE" .
if [[ "$ENGINE" == podman ]]; then
  archive="$(mktemp --suffix=.tar)"
  podman save -o "$archive" "$IMAGE"
  kind load image-archive "$archive" --name "$CLUSTER"
  rm -f "$archive"
else
  kind load docker-image "$IMAGE" --name "$CLUSTER"
fi

step "waiting for KubeVirt, CDI and Multus"
kubectl -n kubevirt wait kubevirt/kubevirt --for condition=Available --timeout=15m
kubectl wait cdi/cdi --for condition=Available --timeout=10m
kubectl -n kube-system rollout status daemonset/kube-multus-ds --timeout=5m

step "installing Wukong (manifests/ via tests/e2e/overlay)"
kubectl apply --server-side --force-conflicts -k tests/e2e/overlay
# Restart so a reused cluster runs the image just built (the tag does not change).
kubectl -n wukong-system rollout restart deployment/wukong
kubectl -n wukong-system rollout status deployment/wukong --timeout=5m

step "pytest tests/e2e -m e2e"
export WUKONG_E2E=1
python -m pytest tests/e2e -m e2e -p no:cacheprovider "$@"
