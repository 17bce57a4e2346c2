#!/usr/bin/env bash
# Builds KubeVirt's virt-api, virt-controller, virt-operator and resource-generator from this
# wrapper module, and vmistatus (KubeVirt's VMI status type round-tripped, for the tests), into
#   ${WUKONG_KUBEVIRT_CACHE:-${XDG_CACHE_HOME:-~/.cache}/wukong/kubevirt}/<kubevirt version>/
# and prints that folder on its last line. Builds only what is missing there, so a warm cache
# costs a few milliseconds. Fails loudly (non-zero, the go error on stderr) when a build fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(awk '$1=="kubevirt.io/kubevirt"{print $2; exit}' "$here/go.mod")
[ -n "$version" ] || version=$(awk '/^require kubevirt.io\/kubevirt/{print $3; exit}' "$here/go.mod")
cache=${WUKONG_KUBEVIRT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wukong/kubevirt}
out="$cache/$version"
bins=(virt-api virt-controller virt-operator resource-generator vmistatus)
cdi_version=v1.65.0
find_missing() {
  missing=()
  for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing+=("$b"); done
  for f in kubevirt-crd.yaml cdi-crds.yaml; do [ -s "$out/$f" ] || missing+=("$f"); done
}
find_missing
if [ "${#missing[@]}" = 0 ]; then echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "go not found: install Go >= 1.26 to build KubeVirt's components" >&2; exit 1; }
mkdir -p "$out"
exec 9>"$cache/.build-$version.lock"
if command -v flock >/dev/null; then
  flock 9
  find_missing
  if [ "${#missing[@]}" = 0 ]; then echo "$out"; exit 0; fi
fi
start=$(date +%s)
cd "$here"
export GOFLAGS=-mod=mod CGO_ENABLED=0
ldflags="-s -w -X kubevirt.io/client-go/version.gitVersion=$version -X kubevirt.io/client-go/version.gitTreeState=clean"
echo "building KubeVirt ${missing[*]} $version into $out (first build takes a while)" >&2
tmp=
trap 'rm -f "$tmp"' EXIT
for b in "${missing[@]}"; do
  case $b in
    kubevirt-crd.yaml)
      # The KubeVirt CRD is not in virt-operator's install strategy; its generator prints it.
      "$out/resource-generator" --type=kv > "$out/.$b.tmp.$$" && mv -f "$out/.$b.tmp.$$" "$out/$b"
      continue ;;
    cdi-crds.yaml)
      # CDI's CRDs as CDI's own crd-generator wrote them into its module (crds_generated.go).
      cdi=$(go mod download -json "kubevirt.io/containerized-data-importer@$cdi_version" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
      python3 "$here/cdi_crds.py" "$cdi/pkg/operator/resources/crds_generated.go" \
        > "$out/.$b.tmp.$$" && mv -f "$out/.$b.tmp.$$" "$out/$b"
      echo "  $b: CDI $cdi_version" >&2
      continue ;;
    resource-generator) pkg=kubevirt.io/kubevirt/tools/resource-generator ;;
    vmistatus) pkg=./vmistatus ;;
    *) pkg=kubevirt.io/kubevirt/cmd/$b ;;
  esac
  tmp="$out/.$b.tmp.$$"
  t0=$(date +%s)
  go build -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg" >&2
  mv -f "$tmp" "$out/$b"
  echo "  $b: $(( $(date +%s) - t0 ))s, $(du -h "$out/$b" | cut -f1)" >&2
done
echo "built in $(( $(date +%s) - start ))s: $(du -sh "$out" | cut -f1)" >&2
echo "$out"
