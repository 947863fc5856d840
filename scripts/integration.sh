#!/usr/bin/env bash
# Run the integration targets with ansible-test against the real engines.
#   scripts/integration.sh [target ...]   (default: every target)
# ansible-test wants the collection below ansible_collections/persist/docker, so
# the checkout is copied there first (a symlink is resolved back to the checkout).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# Outside the checkout: inside it, ansible-test would list files with git, and .tmp is ignored.
# One copy per checkout, so that two checkouts can run their tests at the same time.
COPY="${TMPDIR:-/tmp}/persist-docker-integration-$(printf '%s' "$ROOT" | md5sum | cut -c1-8)/ansible_collections/persist/docker"
mkdir -p "$COPY"
rsync -a --delete --exclude .venv --exclude .tmp --exclude .git --exclude tests/output "$ROOT/" "$COPY/"
cd "$COPY"
LOG="$ROOT/.tmp/integration.log"
mkdir -p "$(dirname "$LOG")"
set +e
"$ROOT/.venv/bin/ansible-test" integration --python 3.11 --allow-destructive --color no "$@" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e
ran=$(grep -c '^Running .* integration test role' "$LOG" || true)
if [ "$status" -eq 0 ]; then
  echo "integration: $ran passed, 0 failed"
else
  echo "integration: $((ran > 0 ? ran - 1 : 0)) passed, 1 failed"
fi
exit "$status"
