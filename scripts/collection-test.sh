#!/usr/bin/env bash
# The collection as users get it: build the tarball, check what it holds and its size, install
# it into a clean directory, and from an empty directory (nothing of the checkout on any path)
# run ansible-doc on every module and role and the demo playbook persist.docker.demo. Then check
# the execution environment metadata with ansible-builder (introspect and create; the container
# build itself needs a registry to pull the base image from, which this machine cannot reach).
#   scripts/collection-test.sh          (make collection-test, part of make test)
#   COLLECTION_TEST_DEMO=0 scripts/...  skip the demo run
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
BIN="$ROOT/.venv/bin"
MAX_KB="${COLLECTION_MAX_KB:-1024}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/persist-docker-collection.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
# Nothing of the checkout: no ansible.cfg, no collections path pointing at it.
unset ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_PATHS
export PATH="$BIN:$PATH"

fail() { echo "collection-test: FAILED: $*" >&2; exit 1; }
step() { echo "collection-test: $*"; }

step "building the tarball"
(cd "$ROOT" && ansible-galaxy collection build --force --output-path "$WORK/dist" >/dev/null)
tarball="$(ls "$WORK"/dist/persist-docker-*.tar.gz)"
size_kb=$(( $(stat -c %s "$tarball") / 1024 ))
tar tzf "$tarball" > "$WORK/contents.txt"
files=$(wc -l < "$WORK/contents.txt")
step "$(basename "$tarball"): ${size_kb} KiB, $files entries"
[ "$size_kb" -le "$MAX_KB" ] || fail "the tarball is ${size_kb} KiB, more than ${MAX_KB} KiB; check build_ignore in galaxy.yml"

unwanted="$(grep -E '^(\.venv|\.tmp|\.git|\.ci|\.ruff_cache|\.pytest_cache|tests/output|bench|scripts)(/|$)|(^|/)__pycache__(/|$)|\.pyc$|\.tar\.gz$' || true)"
[ -z "$unwanted" ] || fail "the tarball holds files build_ignore should keep out: $(echo "$unwanted" | head -5 | tr '\n' ' ')"
for required in MANIFEST.json FILES.json README.md meta/runtime.yml meta/execution-environment.yml \
        requirements.txt bindep.txt playbooks/demo.yml plugins/module_utils/client.py \
        plugins/doc_fragments/docker.py; do
    grep -qx "$required" "$WORK/contents.txt" || fail "the tarball lacks $required"
done

step "installing it into a clean collections directory"
mkdir "$WORK/run"
cd "$WORK/run"
export ANSIBLE_COLLECTIONS_PATH="$WORK/collections"
ansible-galaxy collection install "$tarball" -p "$WORK/collections" >/dev/null
found="$(ansible-galaxy collection list persist.docker 2>/dev/null | sed -n 's/^# //p' | xargs)"
[ "$found" = "$WORK/collections/ansible_collections" ] || fail "persist.docker is found at '$found', not only in the clean directory"

step "ansible-doc of every module and role"
modules="$(sed -n 's#^plugins/modules/\([a-z_]*\)\.py$#\1#p' "$WORK/contents.txt" | sort)"
for module in $modules; do
    ansible-doc "persist.docker.$module" >/dev/null 2>"$WORK/doc.err" \
        || fail "ansible-doc persist.docker.$module: $(head -3 "$WORK/doc.err")"
done
roles="$(sed -n 's#^roles/\([a-z_]*\)/meta/argument_specs.yml$#\1#p' "$WORK/contents.txt" | sort)"
for role in $roles; do
    ansible-doc -t role "persist.docker.$role" >/dev/null 2>"$WORK/doc.err" \
        || fail "ansible-doc -t role persist.docker.$role: $(head -3 "$WORK/doc.err")"
done
step "$(echo "$modules" | wc -w) modules and $(echo "$roles" | wc -w) roles documented"

if [ "${COLLECTION_TEST_DEMO:-1}" != 0 ]; then
    step "ansible-playbook persist.docker.demo from $WORK/run"
    ansible-playbook persist.docker.demo > "$WORK/demo.log" 2>&1 || { tail -40 "$WORK/demo.log" >&2; fail "the demo failed"; }
    grep -E '^localhost +: ' "$WORK/demo.log" | tail -1
fi

step "execution environment: dependencies ansible-builder finds in the installed collection"
ansible-builder introspect "$WORK/collections" > "$WORK/introspect.txt"
for dep in "docker>=7.0.0" "requests>=2.28" "rsync"; do
    grep -q -- "$dep.*# from collection persist.docker" "$WORK/introspect.txt" \
        || fail "ansible-builder introspect does not find $dep: $(cat "$WORK/introspect.txt")"
done
bindep -f "$ROOT/bindep.txt" --profiles >/dev/null 2>"$WORK/bindep.err" \
    || fail "bindep.txt does not parse: $(cat "$WORK/bindep.err")"

step "execution environment: ansible-builder create with the tarball"
mkdir "$WORK/ee"
cp "$tarball" "$WORK/ee/"
cat > "$WORK/ee/execution-environment.yml" <<EOF
---
version: 3
images:
  base_image:
    name: quay.io/ansible/ansible-runner:latest
dependencies:
  ansible_core:
    package_pip: ansible-core>=2.16
  ansible_runner:
    package_pip: ansible-runner
  galaxy:
    collections:
      - name: /build/$(basename "$tarball")
        type: file
additional_build_files:
  - src: $(basename "$tarball")
    dest: collections
additional_build_steps:
  prepend_galaxy:
    - COPY _build/collections/$(basename "$tarball") /build/$(basename "$tarball")
EOF
(cd "$WORK/ee" && ansible-builder create -f execution-environment.yml --context context --output-filename Containerfile >/dev/null) \
    || fail "ansible-builder create failed"
[ -f "$WORK/ee/context/Containerfile" ] && [ -f "$WORK/ee/context/_build/collections/$(basename "$tarball")" ] \
    || fail "ansible-builder create made no build context"
step "passed"
