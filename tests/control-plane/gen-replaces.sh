#!/usr/bin/env bash
# Regenerates the `replace` block of go.mod from the published k8s.io/kubernetes go.mod.
#
# Why: k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/apiserver, ...) at
# v0.0.0 and replaces them with ./staging paths, which do not exist outside its own repo. A
# module that imports k8s.io/kubernetes must replace each of them with the published tag
# v0.<minor>.<patch> itself. Generating the list keeps it correct when KUBE_VERSION moves.
#
# Usage: tests/control-plane/gen-replaces.sh [v1.36.3]   (run from anywhere; edits go.mod)
set -euo pipefail
cd "$(dirname "$0")"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

kube_version="${1:-$(grep -oE 'k8s\.io/kubernetes v[0-9.]+' go.mod | head -n1 | cut -d' ' -f2)}"
[[ -n "$kube_version" ]] || { echo "gen-replaces: no k8s.io/kubernetes version given or found in go.mod" >&2; exit 1; }
staging_version="v0.${kube_version#v1.}"

gomod="$(go mod download -json "k8s.io/kubernetes@${kube_version}" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')"
[[ -f "$gomod" ]] || { echo "gen-replaces: could not download go.mod of k8s.io/kubernetes@${kube_version}" >&2; exit 1; }

# Every module that kubernetes requires at v0.0.0 is a staging module.
mapfile -t staging < <(awk '$2 == "v0.0.0" && $1 ~ /^k8s\.io\// { print $1 }' "$gomod" | sort -u)
[[ ${#staging[@]} -gt 0 ]] || { echo "gen-replaces: no staging modules found in $gomod" >&2; exit 1; }

args=()
for m in "${staging[@]}"; do
	args+=("-replace=${m}=${m}@${staging_version}")
done
go mod edit -require="k8s.io/kubernetes@${kube_version}" "${args[@]}"
echo "gen-replaces: k8s.io/kubernetes ${kube_version}, ${#staging[@]} staging modules at ${staging_version}" >&2
