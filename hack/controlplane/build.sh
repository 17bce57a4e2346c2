#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, etcd and kubectl from this wrapper module into
#   ${WUKONG_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/wukong/controlplane}/v<k8s version>/
# and prints that folder. Builds only the binaries missing there (a cache from before kubectl just
# gains it), so does nothing when all are there, or when KUBEBUILDER_ASSETS points at a folder
# holding kube-apiserver and etcd (envtest convention; envtest ships kubectl there too).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ]; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi
version=$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' "$here/go.mod")
cache=${WUKONG_CONTROLPLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wukong/controlplane}
out="$cache/$version"
bins=(kube-apiserver kube-controller-manager etcd kubectl)
find_missing() {
  missing=()
  for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing+=("$b"); done
}
find_missing
if [ "${#missing[@]}" = 0 ]; then echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "go not found: install Go >= 1.26 to build the control plane" >&2; exit 1; }
# One build at a time: parallel test sessions would otherwise build the same binaries twice.
mkdir -p "$out"
exec 9>"$cache/.build-$version.lock"
if command -v flock >/dev/null; then
  flock 9
  find_missing
  if [ "${#missing[@]}" = 0 ]; then echo "$out"; exit 0; fi
fi
minor=${version#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
start=$(date +%s)
cd "$here"
export GOFLAGS=-mod=mod CGO_ENABLED=0
echo "building ${missing[*]} $version into $out (first build takes a while)" >&2
# Each binary goes to a temp file in $out, then mv: it is there whole or not at all.
tmp=
trap 'rm -f "$tmp"' EXIT
for b in "${missing[@]}"; do
  if [ "$b" = etcd ]; then
    pkg=go.etcd.io/etcd/server/v3 flags="-s -w"
  else
    pkg=k8s.io/kubernetes/cmd/$b flags=$ldflags
  fi
  tmp="$out/.$b.tmp.$$"
  go build -trimpath -ldflags "$flags" -o "$tmp" "$pkg" >&2
  mv -f "$tmp" "$out/$b"
done
echo "built in $(( $(date +%s) - start ))s: $(du -sh "$out" | cut -f1)" >&2
echo "$out"
