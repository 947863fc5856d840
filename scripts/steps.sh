#!/usr/bin/env bash
# Run make targets one after the other and print how long each took, also when one fails.
#   scripts/steps.sh STEP [STEP ...]     e.g. scripts/steps.sh setup lint sanity unit
# Stops at the first step that fails (its exit status is this script's).
set -uo pipefail
names=()
times=()
status=0
for step in "$@"; do
  start=$(date +%s)
  make --no-print-directory "$step"
  status=$?
  names+=("$step")
  times+=($(($(date +%s) - start)))
  [ "$status" -eq 0 ] || break
done
echo
echo "step durations:"
total=0
for i in "${!names[@]}"; do
  printf '  %-16s %4dm %02ds\n' "${names[$i]}" $((times[i] / 60)) $((times[i] % 60))
  total=$((total + times[i]))
done
printf '  %-16s %4dm %02ds%s\n' total $((total / 60)) $((total % 60)) "$([ "$status" -eq 0 ] || echo "  (stopped: ${names[-1]} failed)")"
exit "$status"
