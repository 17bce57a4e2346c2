#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd from this wrapper module into
#   ${WUKONG_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/wukong/controlplane}/v<k8s version>/
# and prints that folder. Does nothing when the binaries are already there, or when
# KUBEBUILDER_ASSETS points at a folder holding kube-apiserver and etcd (envtest convention).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi
version=$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' "$here/go.mod")
cache=${WUKONG_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wukong/controlplane}
out="$cache/$version"
bins=(kube-apiserver kube-controller-manager etcd)
missing=0
for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing=1; done
if [ "$missing" = 0 ]; then echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "go not found: install Go >= 1.26 to build the control plane" >&2; exit 1; }
# One build at a time: parallel test sessions would otherwise share (and clobber) $out.tmp.
mkdir -p "$cache"
exec 9>"$cache/.build-$version.lock"
if command -v flock >/dev/null; then
  flock 9
  missing=0
  for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing=1; done
  if [ "$missing" = 0 ]; then echo "$out"; exit 0; fi
fi
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
minor=${version#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
start=$(date +%s)
cd "$here"
export GOFLAGS=-mod=mod CGO_ENABLED=0
echo "building control plane $version into $out (first build takes a while)" >&2
go build -trimpath -ldflags "$ldflags" -o "$out.tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
go build -trimpath -ldflags "$ldflags" -o "$out.tmp/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager >&2
go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3 >&2
rm -rf "$out"; mv "$out.tmp" "$out"
echo "built in $(( $(date +%s) - start ))s: $(du -sh "$out" | cut -f1)" >&2
echo "$out"
