#!/usr/bin/env bash
# Run make targets one after the other and print how long each took, also when one fails.
#   scripts/steps.sh STEP [STEP ...]     e.g. scripts/steps.sh setup lint sanity unit
# A step written A+B runs the targets A and B at the same time (they must share nothing): A's
# output comes as it goes, B's goes to .tmp/step-B.log and is printed when both have ended.
# Either side may be a list A1,A2: its targets run one after the other, up to the first that fails.
# Stops at the first step that fails (its exit status is this script's).
set -uo pipefail
names=()
times=()
status=0
mkdir -p .tmp
rm -f .tmp/failures  # what failed, as the steps note it (scripts/integration.sh): printed last
# make each target of the comma-separated list $1 in turn; the status of the first that fails
targets() {
  local target list
  IFS=, read -ra list <<<"$1"
  for target in "${list[@]}"; do
    make --no-print-directory "$target" || return $?
  done
}
for step in "$@"; do
  start=$(date +%s)
  if [[ $step == *+* ]]; then
    first=${step%%+*}
    second=${step#*+}
    targets "$second" >".tmp/step-$second.log" 2>&1 &
    pid=$!
    targets "$first"
    status=$?
    wait "$pid"
    second_status=$?
    echo "== $second (ran beside $first), from .tmp/step-$second.log:"
    cat ".tmp/step-$second.log"
    [ "$status" -eq 0 ] && status=$second_status
  else
    targets "$step"
    status=$?
  fi
  [ "$step" = setup ] && [ "$status" -eq 0 ] && export PD_SETUP_DONE=1
  names+=("$step")
  times+=($(($(date +%s) - start)))
  [ "$status" -eq 0 ] || break
done
echo
echo "step durations:"
total=0
for i in "${!names[@]}"; do
  printf '  %-24s %4dm %02ds\n' "${names[$i]}" $((times[i] / 60)) $((times[i] % 60))
  total=$((total + times[i]))
done
printf '  %-24s %4dm %02ds%s\n' total $((total / 60)) $((total % 60)) "$([ "$status" -eq 0 ] || echo "  (stopped: ${names[-1]} failed)")"
if [ "$status" -ne 0 ] && [ -s .tmp/failures ]; then
  echo
  echo "what failed (from .tmp/failures):"
  cat .tmp/failures
fi
exit "$status"
