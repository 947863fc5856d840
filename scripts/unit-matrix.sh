#!/usr/bin/env bash
# The unit tests on every ansible-core release that is not end-of-life, each in a virtual
# environment of its own below .tmp/ (kept between runs, rebuilt when this script or
# requirements.txt changes), on the Python that release's controller needs (pyenv provides
# them on our machines). meta/runtime.yml's requires_ansible names the oldest row.
#   scripts/unit-matrix.sh [pytest options]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# release  python
MATRIX=(
  "2.19 3.11"
  "2.20 3.12"
  "2.21 3.13"
)
stamp=$(cat "$0" requirements.txt | sha256sum | cut -c1-16)
status=0
summary=()
for row in "${MATRIX[@]}"; do
  read -r core py <<<"$row"
  venv=".tmp/unit-core-$core"
  if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]; then
    python=$(find "$HOME/.pyenv/versions" -maxdepth 3 -path "*/versions/$py.*/bin/python" 2>/dev/null | sort -V | tail -n 1)
    [ -n "$python" ] || python=$(command -v "python$py" || true)
    [ -n "$python" ] || { echo "unit-matrix: no Python $py for ansible-core $core" >&2; exit 1; }
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "ansible-core~=$core.0" -r requirements.txt "pytest>=8.0" pyyaml >"$venv.log" 2>&1 \
      || { cat "$venv.log" >&2; exit 1; }
    echo "$stamp" > "$venv/.stamp"
  fi
  echo "== unit tests on ansible-core $("$venv/bin/python" -c 'import ansible; print(ansible.__version__)') (Python $py)"
  if "$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" tests/unit; then
    summary+=("ansible-core $core: passed")
  else
    summary+=("ansible-core $core: FAILED")
    status=1
  fi
done
printf '%s\n' "${summary[@]}"
exit "$status"
