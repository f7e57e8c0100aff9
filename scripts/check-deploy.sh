#!/usr/bin/env bash
# The Kubernetes manifests as kustomize renders them must equal deploy/golden/: a change to a
# manifest shows up as a reviewed change of what a cluster receives. `--update` rewrites the
# golden files after a deliberate change. (That the rendered containers start and become ready
# is tested on the real binary: crates/twinloop-cli/tests/cli/deploy_manifests.rs.)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
command -v kubectl >/dev/null || { echo "check-deploy: kubectl is needed (kubectl kustomize)" >&2; exit 1; }

status=0
for target in base overlays/example; do
  golden="deploy/golden/${target//\//-}.yaml"
  rendered="$(kubectl kustomize "deploy/k8s/$target")"
  if [[ "${1:-}" == "--update" ]]; then
    printf '%s\n' "$rendered" > "$golden"
  elif ! diff -u "$golden" <(printf '%s\n' "$rendered"); then
    echo "check-deploy: deploy/k8s/$target renders differently from $golden (scripts/check-deploy.sh --update after a deliberate change)" >&2
    status=1
  fi
done
exit $status
