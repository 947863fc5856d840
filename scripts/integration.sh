#!/usr/bin/env bash
# Run the integration targets with ansible-test against the real engines.
#   scripts/integration.sh target ...   these targets, one after the other, output as it comes
#   scripts/integration.sh              every target, in INTEGRATION_LANES lanes at once (default 2)
# ansible-test wants the collection below ansible_collections/persist/docker, so the checkout is
# copied there first (a symlink is resolved back to the checkout).
#
# Lanes: targets that share nothing can run side by side (each target uses its own name prefixes,
# host ports and scratch engines). The targets are spread over the lanes by their durations in
# tests/integration/durations (longest first, each to the lane with the least work so far); each
# lane runs its own ansible-test from its own copy, its output goes to .tmp/integration-laneN.log,
# and a lane that fails has its log's end printed. Every run writes the measured durations to
# .tmp/integration-durations; copy that over tests/integration/durations to rebalance.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TMP="$ROOT/.tmp"
mkdir -p "$TMP"
rm -f "$TMP/failures"  # this run's failures only (see failures() below)
# Outside the checkout: inside it, ansible-test would list files with git, and .tmp is ignored.
# One copy per checkout and lane, so that two checkouts can run their tests at the same time.
BASE="${TMPDIR:-/tmp}/persist-docker-integration-$(printf '%s' "$ROOT" | md5sum | cut -c1-8)"

copy_of() {  # copy_of LANE: the checkout copied for that lane; prints its path
  local copy="$BASE${1:+-lane$1}/ansible_collections/persist/docker"
  mkdir -p "$copy"
  rsync -a --delete --exclude .venv --exclude .tmp --exclude .git --exclude tests/output "$ROOT/" "$copy/"
  echo "$copy"
}

# stamp TIMES: pass the output through, and note when each target starts in TIMES
stamp() {
  local line
  while IFS= read -r line; do
    printf '%s\n' "$line"
    if [[ $line =~ ^Running\ (.+)\ integration\ test\ role ]]; then
      printf '%s %s\n' "${BASH_REMATCH[1]}" "$(date +%s)" >>"$1"
    fi
  done
  printf '%s %s\n' "-" "$(date +%s)" >>"$1"
}

# durations TIMES...: "target seconds" from the start stamps (a target ends where the next starts)
durations() {
  local file prev='' start=0 name at
  for file in "$@"; do
    prev=''
    while read -r name at; do
      [ -n "$prev" ] && printf '%s %s\n' "$prev" $((at - start))
      prev=$name
      start=$at
      [ "$name" = - ] && prev=''
    done <"$file"
  done
}

# failures LOG: the last tasks that failed in LOG (not those ignored), each with the start of its
# error; appended to $TMP/failures, which scripts/steps.sh prints last, where a cut log still shows it
failures() {
  awk '
    function flush() { if (held != "") print held; held = "" }
    /^Running .* integration test role/ { flush(); target = $2 }
    /^(TASK \[|PLAY RECAP)/ { flush(); task = $0 }
    /^(fatal|failed): / { held = held target ": " task "\n  " substr($0, 1, 1500) "\n" }
    /^\.\.\.ignoring/ { held = "" }
    /^ERROR: / { flush(); print target ": " substr($0, 1, 500) }
    END { flush() }
  ' "$1" | grep -v '^$' | tail -n 12 >>"$TMP/failures"
}

run() {  # run LANE LOG TIMES target...: ansible-test in the lane's copy; its status
  local lane=$1 log=$2 times=$3 copy
  shift 3
  copy=$(copy_of "$lane")
  : >"$times"
  (cd "$copy" && "$ROOT/.venv/bin/ansible-test" integration --python 3.11 --allow-destructive --color no "$@" 2>&1) \
    | stamp "$times" >"$log"
  return "${PIPESTATUS[0]}"
}

if [ $# -gt 0 ]; then
  LOG="$TMP/integration.log"
  set +e
  copy=$(copy_of "")
  (cd "$copy" && "$ROOT/.venv/bin/ansible-test" integration --python 3.11 --allow-destructive --color no "$@" 2>&1) \
    | stamp "$TMP/integration.times" | tee "$LOG"
  status=${PIPESTATUS[0]}
  set -e
  [ "$status" -eq 0 ] || failures "$LOG"
  ran=$(grep -c '^Running .* integration test role' "$LOG" || true)
  if [ "$status" -eq 0 ]; then
    echo "integration: $ran passed, 0 failed"
  else
    echo "integration: $((ran > 0 ? ran - 1 : 0)) passed, 1 failed"
  fi
  exit "$status"
fi

LANES=${INTEGRATION_LANES:-2}
targets=()
for dir in "$ROOT"/tests/integration/targets/*/; do
  name=$(basename "$dir")
  # setup_* targets and those with the alias hidden run only as another target's dependency
  [[ $name == setup_* ]] || grep -qx hidden "$dir/aliases" 2>/dev/null || targets+=("$name")
done
# longest first (unknown ones count 60 s), each to the least loaded lane
mapfile -t ordered < <(
  for t in "${targets[@]}"; do
    secs=$(awk -v t="$t" '$1 == t { print $2 }' "$ROOT/tests/integration/durations" 2>/dev/null || true)
    echo "${secs:-60} $t"
  done | sort -rn -k1,1 -k2
)
declare -a load lane_targets
for ((i = 0; i < LANES; i++)); do load[i]=0; lane_targets[i]=''; done
for entry in "${ordered[@]}"; do
  secs=${entry%% *}
  t=${entry#* }
  best=0
  for ((i = 1; i < LANES; i++)); do ((load[i] < load[best])) && best=$i; done
  load[best]=$((load[best] + secs))
  lane_targets[best]="${lane_targets[best]} $t"
done

pids=()
for ((i = 0; i < LANES; i++)); do
  n=$((i + 1))
  # shellcheck disable=SC2086  # the list is target names
  echo "integration: lane $n (about $((load[i] / 60)) min):${lane_targets[i]}"
  # shellcheck disable=SC2086
  run "$n" "$TMP/integration-lane$n.log" "$TMP/integration-lane$n.times" ${lane_targets[i]} &
  pids+=($!)
done
status=0
failed=()
for ((i = 0; i < LANES; i++)); do
  n=$((i + 1))
  if wait "${pids[i]}"; then
    echo "integration: lane $n passed"
  else
    status=1
    failed+=("$n")
  fi
done
times=()
for ((i = 1; i <= LANES; i++)); do times+=("$TMP/integration-lane$i.times"); done
durations "${times[@]}" | sort >"$TMP/integration-durations"
echo "integration: target durations (s), in $TMP/integration-durations:"
sort -rn -k2 "$TMP/integration-durations" | awk '{ printf "  %-24s %5d\n", $1, $2 }'
for n in "${failed[@]}"; do
  echo
  echo "integration: lane $n failed; the end of $TMP/integration-lane$n.log:"
  tail -n 150 "$TMP/integration-lane$n.log"
  failures "$TMP/integration-lane$n.log"
done
ran=$(cat "${times[@]}" | grep -vc '^- ' || true)
if [ "$status" -eq 0 ]; then
  echo "integration: $ran passed, 0 failed"
else
  echo "integration: $((ran - ${#failed[@]})) passed, ${#failed[@]} failed (lane(s) ${failed[*]})"
fi
exit "$status"
