#!/usr/bin/env bash
# Run the Molecule scenarios (converge, idempotence, verify) against this host.
#   scripts/molecule.sh [scenario ...]   (default: every molecule/<scenario>/ but fleet)
# The shared base configuration is .config/molecule/config.yml.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
mkdir -p .tmp/collections/ansible_collections/persist
ln -sfn ../../../.. .tmp/collections/ansible_collections/persist/docker

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  for dir in molecule/*/; do
    # fleet runs on hosts of its own and has its own target: make fleet
    [ -f "$dir/molecule.yml" ] && [ "$(basename "$dir")" != fleet ] && scenarios+=("$(basename "$dir")")
  done
fi
failed=()
for scenario in "${scenarios[@]}"; do
  echo "molecule: scenario $scenario"
  molecule test --scenario-name "$scenario" || failed+=("$scenario")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "molecule: failed: ${failed[*]}" >&2
  exit 1
fi
echo "molecule: ${#scenarios[@]} scenario(s) passed"
