#!/usr/bin/env bash
# Build the krew archive (the launcher in plugins/krew/ and the licence text) reproducibly and
# print its sha256, which plugins/krew/wukong.yaml must carry:
#   bash hack/krew_archive.sh [OUT_DIR]     # default: dist/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/dist}
mkdir -p "$out"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=go-w \
  -C "$root/plugins/krew" -cf - kubectl-wukong | gzip -n -9 > "$out/kubectl-wukong.tar.gz"
sha256sum "$out/kubectl-wukong.tar.gz" | cut -d' ' -f1
