#!/usr/bin/env python
"""Crash safety of volume_backup and volume_restore with a restic repository, against engine A.

The modules run restic as a child in a session of its own. Killed with SIGKILL (as an OOM kill,
a lost controller or a stopped job would do it), on a repository in a local directory:

a. the module, while its ``restic backup`` child writes the data snapshot (method local: a tree
   from the mountpoint; method api: a tar stream) or the manifest snapshot; the child is left to
   end on its own (it finishes, or dies of the pipe the module no longer reads);
b. the ``restic backup`` child of the data snapshot, then the module;
c. the ``restic dump`` child of volume_restore (the module is left to report the failure).

After each: the next run of the same module completes without a manual ``restic unlock``; the
plain ``restic check`` passes; backup_info lists the data snapshots ``restic snapshots --json``
lists, each ``complete`` exactly when a manifest snapshot of its run exists; an incomplete data
snapshot is not what ``latest`` restores; and the newest snapshot restored into a new volume
equals the source, by the modules' digest and by a walk of both trees that shares no code with
the modules. Every kill must hit a running restic (a run that ended before is tried again, a
bounded number of times, after the next change to the volume).

Each problem is collected (a stale lock is then removed with ``restic unlock`` so that the
next case starts from a usable repository) and printed; the script fails when there is any.
Run as root: python3 repository_crash_test.py
"""

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

ENGINE_A = "unix:///var/run/docker.sock"
STAGING = ".persist-docker-staging"
HELPER_LABEL = "persist.docker.helper"
HERE = os.path.dirname(os.path.abspath(__file__))
# Under ansible-test the collection lives in .../ansible_collections/persist/docker; in a
# checkout, `make collection` links it below .tmp/collections.
COLLECTIONS = (HERE[:HERE.index("/ansible_collections/")] if "/ansible_collections/" in HERE
               else os.path.abspath(os.path.join(HERE, *[".."] * 5, ".tmp", "collections")))
MODULES = "ansible_collections.persist.docker.plugins.modules."
MANIFEST_TAG = "persist.docker.manifest="
ATTEMPTS = 4  # runs per kill case; one whose restic ended before the kill is tried again
CHILD_SECONDS = 120  # the longest a module takes to start its restic child, or restic to end
TICK = 0.002


def docker(*args, check=True, **kwargs):
    return subprocess.run(["docker", "-H", ENGINE_A, *args], check=check, capture_output=True, text=True, **kwargs)


def mountpoint(volume):
    return docker("volume", "inspect", "-f", "{{.Mountpoint}}", volume).stdout.strip()


def in_volume(volume, script):
    """Run a shell script in a busybox container with the volume at /data."""
    docker("run", "--rm", "--network", "none", "-v", volume + ":/data", "busybox:latest", "sh", "-c", script)


def helpers(volume):
    """Ids of the modules' helper containers (label persist.docker.helper) that use volume."""
    return docker("ps", "-aq", "--filter", "label=" + HELPER_LABEL, "--filter", "volume=" + volume).stdout.split()


def tree(root):
    """{relative path: (type, mode, uid, gid, size, mtime, content digest or link target)}."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d != STAGING]
        for name in dirnames + filenames + ([] if rel_dir != "." else ["."]):
            path = os.path.normpath(os.path.join(dirpath, name))
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(path)
            extra = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    extra = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            mtime = None if rel == "." or stat.S_ISLNK(st.st_mode) else int(st.st_mtime)
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        st.st_size if stat.S_ISREG(st.st_mode) else 0, mtime, extra)
    return out


def tree_differences(a, b, count=3):
    keys = sorted(set(a) | set(b))
    return [k for k in keys if a.get(k) != b.get(k)][:count]


class Env:
    """The test's repository, volume, working directory and the way to run the modules and restic."""

    def __init__(self, tmp, volume):
        self.tmp = tmp
        self.volume = volume
        self.repo = os.path.join(tmp, "repo")
        self.password_file = os.path.join(tmp, "password")
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("pd-crash-%d\n" % random.SystemRandom().randint(0, 1 << 62))
        self.base = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        self.base["RESTIC_CACHE_DIR"] = os.path.join(tmp, "cache")
        self.module_env = dict(self.base, PYTHONPATH=COLLECTIONS, ANSIBLE_MODULE_NO_LOG="0")
        self.restic_env = dict(self.base, RESTIC_REPOSITORY=self.repo, RESTIC_PASSWORD_FILE=self.password_file)
        self.volumes = [volume]

    def repository(self, **more):
        return dict(repository=self.repo, repository_password_file=self.password_file, **more)

    def start(self, module, args):
        path = os.path.join(self.tmp, "args-%s.json" % time.monotonic_ns())
        with open(path, "w") as f:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
        return subprocess.Popen([sys.executable, "-m", MODULES + module, path], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.module_env, cwd=self.tmp)

    @staticmethod
    def result(proc, timeout=300):
        out, err = proc.communicate(timeout=timeout)
        try:
            return json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise AssertionError("the module printed no result: %s %s" % (out[-500:], err[-2000:])) from None

    def run(self, module, args):
        return self.result(self.start(module, args))

    def restic(self, *args):
        return subprocess.run(["restic", *args], env=self.restic_env, capture_output=True, text=True, timeout=600,
                              check=False)

    def locks(self):
        with contextlib.suppress(FileNotFoundError):
            return set(os.listdir(os.path.join(self.repo, "locks")))
        return set()

    def snapshots(self):
        """restic's own list (``--no-lock``: it must not depend on what the test examines)."""
        done = self.restic("snapshots", "--json", "--no-lock")
        assert done.returncode == 0, "restic snapshots: %s" % done.stderr[-500:]
        return json.loads(done.stdout) or []

    def fresh_volume(self, label):
        name = "%s-%s" % (self.volume, label)
        docker("volume", "rm", "-f", name, check=False)
        self.volumes.append(name)
        return name


def alive(pid):
    """Whether pid runs (a zombie does not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def find_child(proc, pattern, accept):
    """The pid of a child of proc whose command line matches pattern (pgrep -f) and accept(argv), polled
    until proc ends or CHILD_SECONDS pass; None when none was seen."""
    deadline = time.monotonic() + CHILD_SECONDS
    while proc.poll() is None and time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", pattern], capture_output=True, text=True,
                               check=False).stdout.split()
        for pid in map(int, found):
            argv = cmdline(pid)
            if argv and accept(argv):
                return pid
        time.sleep(TICK)
    return None


def wait_new_lock(env, before, pid):
    """Wait (bounded) until restic pid has written its lock file whole: a lock that was not there before, made
    read-only (restic's local backend does that once the file is written and synced). True if it has, while
    pid still runs."""
    deadline = time.monotonic() + CHILD_SECONDS
    while alive(pid) and time.monotonic() < deadline:
        for name in env.locks() - before:
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(os.path.join(env.repo, "locks", name))
                if st.st_size and not st.st_mode & 0o222:
                    return alive(pid)
        time.sleep(TICK)
    return False


def wait_staged(volume, pid):
    """Wait (bounded) until the restore into volume has written data into its staging directory; True if it
    has, while restic pid still runs."""
    deadline = time.monotonic() + CHILD_SECONDS
    while alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            data = os.path.join(mountpoint(volume), ".persist-docker-staging", "data")
            if os.path.isdir(data) and os.listdir(data):
                return alive(pid)
        time.sleep(TICK)
    return False


def wait_gone(pid):
    """Wait (bounded) until pid has ended and been reaped: restic counts a lock of a pid that still exists on
    this host, a zombie too, as held (an orphan is reaped by pid 1, at once on most systems)."""
    deadline = time.monotonic() + CHILD_SECONDS
    while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists("/proc/%d" % pid), "restic %d still exists %d s after the kill" % (pid, CHILD_SECONDS)


def kill(pid):
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def change(env, round_):
    """A change to the source that the next backup must store: new data in a big file, some small files."""
    in_volume(env.volume, "head -c 8388608 /dev/urandom > /data/round && echo %d > /data/d3/round && "
                          "for i in $(seq 1 40); do head -c 4096 /dev/urandom > /data/d%d/f$i; done"
              % (round_, 1 + round_ % 20))


def fill(env):
    """A few MB in many files: 20 directories of 100 small files, one of them owned by uid 1000, a link."""
    in_volume(env.volume, "for d in $(seq 1 20); do mkdir /data/d$d; for i in $(seq 1 100); do "
                          "head -c $((RANDOM % 6000 + 1)) /dev/urandom > /data/d$d/f$i; done; done && "
                          "head -c 2097152 /dev/urandom > /data/big && ln -s big /data/link && "
                          "chown -R 1000:1000 /data/d1 && chmod 0750 /data/d1")


# -- the kills --------------------------------------------------------------------------------------

def backup_args(env, method):
    return env.repository(volume=env.volume, method=method)


def kill_backup(env, method, point, order):
    """One backup run killed: point 'data' or 'manifest' (which restic backup), order 'module' (the module only,
    restic left to end on its own) or 'restic' (restic, then the module). A dict of what happened, or None when
    the run ended before its restic child was seen."""
    manifest_name = env.volume + ".manifest.json"
    before = env.locks()
    snapshots_before = {s["id"] for s in env.snapshots()} if os.path.isdir(env.repo) else set()
    proc = env.start("volume_backup", backup_args(env, method))
    pid = find_child(proc, "restic backup",
                     (lambda a: manifest_name in a) if point == "manifest" else (lambda a: manifest_name not in a))
    if pid is None:
        result = env.result(proc)
        assert not result.get("failed"), "a backup that was not killed failed: %s" % result.get("msg")
        return None
    if point == "data" and not wait_new_lock(env, before, pid):
        result = env.result(proc)  # restic ended before its lock was seen: not a kill of a running restic
        assert not result.get("failed"), "a backup that was not killed failed: %s" % result.get("msg")
        return None
    if order == "module":
        kill(proc.pid)
        proc.wait()
        wait_gone(pid)
    else:
        kill(pid)
        kill(proc.pid)
        proc.wait()
        wait_gone(pid)
    new = [s for s in env.snapshots() if s["id"] not in snapshots_before]
    return dict(killed="module" if order == "module" else "restic,module", locks_left=len(env.locks() - before),
                snapshots_made=len(new))


def kill_restore(env, volume):
    """One restore killed: the restic dump of the data (not of the manifest). (what happened, the module's
    result) or None when the run ended before its restic child was seen."""
    manifest_name = env.volume + ".manifest.json"
    before = env.locks()
    proc = env.start("volume_restore", env.repository(volume=volume, snapshot_volume=env.volume, method="local"))
    pid = find_child(proc, "restic dump", lambda a: not a[-1].endswith(manifest_name))
    if pid is None:
        result = env.result(proc)
        assert not result.get("failed"), "a restore that was not killed failed: %s" % result.get("msg")
        return None
    if not wait_staged(volume, pid):  # restic dump --no-lock writes no lock: wait for data in the staging
        result = env.result(proc)
        assert not result.get("failed"), "a restore that was not killed failed: %s" % result.get("msg")
        return None
    kill(pid)
    result = env.result(proc)
    wait_gone(pid)
    return dict(killed="restic dump", locks_left=len(env.locks() - before)), result


# -- what must hold after a kill --------------------------------------------------------------------

def oracle_complete(raw):
    """{data snapshot id: complete} from restic's own list and the tags alone."""
    runs = {}  # (volume, run) of a manifest snapshot: whether it carries the digest
    for s in raw:
        tags = s.get("tags") or []
        manifest_of = [t[len(MANIFEST_TAG):] for t in tags if t.startswith(MANIFEST_TAG)]
        run = [t.split("=", 1)[1] for t in tags if t.startswith("persist.docker.run=")]
        if manifest_of and run:
            runs[(manifest_of[0], run[0])] = any(t.startswith("persist.docker.digest=") for t in tags)
    found = {}
    for s in raw:
        tags = s.get("tags") or []
        if any(t.startswith(MANIFEST_TAG) for t in tags):
            continue
        volume = [t.split("=", 1)[1] for t in tags if t.startswith("persist.docker.volume=")]
        run = [t.split("=", 1)[1] for t in tags if t.startswith("persist.docker.run=")]
        digest = any(t.startswith("persist.docker.digest=") for t in tags)
        found[s["id"]] = bool(volume and run and (volume[0], run[0]) in runs and (digest or runs[(volume[0], run[0])]))
    return found


def unlock_stale(env, problems, what):
    """Remove the stale locks (restic unlock keeps those of live processes) so that the test goes on; noted."""
    done = env.restic("unlock")
    assert done.returncode == 0, "restic unlock: %s" % done.stderr[-300:]
    problems.append("%s; the test removed the killed restic's stale lock with 'restic unlock' to go on" % what)


def check_repository(env, problems):
    done = env.restic("check")
    if done.returncode == 0 and "no errors were found" in done.stdout:
        return
    last = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"])
    if "unable to create lock" in done.stderr and env.locks():
        unlock_stale(env, problems, "restic check failed without a manual unlock (%s)" % last[0])
        done = env.restic("check")
    assert done.returncode == 0 and "no errors were found" in done.stdout, \
        "restic check finds errors: %s" % (done.stdout + done.stderr)[-1000:]


def check_listing(env):
    """backup_info against restic's own list; the id of the newest complete data snapshot and the incomplete."""
    info = env.run("backup_info", env.repository())
    assert not info.get("failed"), "backup_info failed: %s" % info.get("msg")
    raw = env.snapshots()
    complete = oracle_complete(raw)
    listed = [(s["id"], s["complete"]) for s in info["snapshots"]]
    expected = [(s["id"], complete[s["id"]]) for s in raw if s["id"] in complete]
    assert listed == expected, "backup_info lists %s, restic snapshots (minus manifest snapshots) %s" % (
        listed, expected)
    newest = [i for i, ok in expected if ok]
    assert newest, "no complete snapshot in the repository"
    return newest[-1], [i for i, ok in expected if not ok], info["snapshots"]


def rerun_backup(env, method, problems):
    result = env.run("volume_backup", backup_args(env, method))
    if result.get("failed") and env.locks():
        unlock_stale(env, problems, "the next volume_backup (method %s) failed: %s" % (method, result.get("msg")))
        result = env.run("volume_backup", backup_args(env, method))
    assert not result.get("failed"), "the next volume_backup failed: %s" % result.get("msg")
    return result


def check_restored(env, volume, result, newest, incomplete, source_tree, problems):
    assert not result.get("failed"), "the restore failed: %s" % result.get("msg")
    assert result["snapshot_id"] == newest, "latest restored %s, the newest complete snapshot is %s" % (
        result["snapshot_id"], newest)
    assert result["snapshot_id"] not in incomplete
    restored = tree(mountpoint(volume))
    if restored != source_tree:
        problems.append("the restored volume differs from the source: %s" % tree_differences(source_tree, restored))


def verify(env, method, source_tree, problems):
    """After a killed backup: the next backup, restic check, the listing and a restore of latest."""
    again = rerun_backup(env, method, problems)
    check_repository(env, problems)
    newest, incomplete, listed = check_listing(env)
    assert again["snapshot_id"] == newest, "the next backup's snapshot %s is not the newest complete %s" % (
        again["snapshot_id"], newest)
    target = env.fresh_volume("restored")
    restored = env.run("volume_restore", env.repository(volume=target, snapshot_volume=env.volume, method="local"))
    check_restored(env, target, restored, newest, incomplete, source_tree, problems)
    assert restored["digest"] == again["digest"], "restored digest %s, the source's %s" % (
        restored["digest"], again["digest"])
    docker("volume", "rm", target)
    # shown, not asserted: volume_backup does not remove the helpers of a killed run through the Engine API
    return dict(rerun="changed" if again["changed"] else "unchanged", snapshots=len(listed),
                incomplete=len(incomplete), helpers_left=len(helpers(env.volume)))


def backup_case(env, label, method, point, order, state, report, problems):
    outcome = None
    for _attempt in range(ATTEMPTS):
        state["round"] += 1
        change(env, state["round"])
        outcome = kill_backup(env, method, point, order)
        if outcome is not None:
            break
    assert outcome is not None, "%s: restic ended before the kill in all %d runs" % (label, ATTEMPTS)
    source_tree = tree(mountpoint(env.volume))
    mine = []
    outcome.update(verify(env, method, source_tree, mine))
    report.append("%-34s %s" % (label, " ".join("%s=%s" % kv for kv in outcome.items())))
    problems.extend("%s: %s" % (label, p) for p in mine)
    print(report[-1], flush=True)
    for p in mine:
        print("  PROBLEM " + p, flush=True)


def restore_case(env, report, problems):
    label = "c. restic dump of volume_restore"
    source_tree = tree(mountpoint(env.volume))
    target = env.fresh_volume("killed-restore")
    outcome = None
    for _attempt in range(ATTEMPTS):
        outcome = kill_restore(env, target)
        if outcome is not None:
            break
        docker("volume", "rm", "-f", target)
    assert outcome is not None, "%s: restic ended before the kill in all %d runs" % (label, ATTEMPTS)
    outcome, killed = outcome
    assert killed.get("failed"), "a restore whose restic was killed did not fail: %s" % killed
    msg = killed.get("msg", "")
    assert "Traceback" not in msg and "\n" not in msg and "restic" in msg, "unclear message: %r" % msg
    mine = []
    again = env.run("volume_restore", env.repository(volume=target, snapshot_volume=env.volume, method="local"))
    if again.get("failed") and env.locks():
        unlock_stale(env, mine, "the next volume_restore failed: %s" % again.get("msg"))
        again = env.run("volume_restore", env.repository(volume=target, snapshot_volume=env.volume, method="local"))
    check_repository(env, mine)
    newest, incomplete, listed = check_listing(env)
    check_restored(env, target, again, newest, incomplete, source_tree, mine)
    outcome.update(module="failed", rerun="changed" if again.get("changed") else "unchanged", snapshots=len(listed),
                   incomplete=len(incomplete))
    report.append("%-34s %s" % (label, " ".join("%s=%s" % kv for kv in outcome.items())))
    problems.extend("%s: %s" % (label, p) for p in mine)
    print(report[-1], flush=True)
    for p in mine:
        print("  PROBLEM " + p, flush=True)


def main():
    volume = "pdrcrash%d" % random.randint(0, 999999)
    tmp = tempfile.mkdtemp(prefix="pdrcrash")
    env = Env(tmp, volume)
    report, problems = [], []
    state = dict(round=0)
    try:
        docker("volume", "create", volume)
        fill(env)
        cases = (
            ("a. module killed, restic on (data)", "local", "data", "module"),
            ("a. module killed, restic on (manifest)", "local", "manifest", "module"),
            ("b. restic killed, then module", "local", "data", "restic"),
            ("a. module killed, restic on (api)", "api", "data", "module"),
            ("b. restic killed, then module (api)", "api", "data", "restic"),
        )
        for label, method, point, order in cases:
            backup_case(env, label, method, point, order, state, report, problems)
        restore_case(env, report, problems)
    finally:
        for name in env.volumes:
            left = helpers(name) if docker("volume", "inspect", name, check=False).returncode == 0 else []
            if left:
                docker("rm", "-f", *left, check=False)
            docker("volume", "rm", "-f", name, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    if problems:
        print("repository crash test FAILED:\n" + "\n".join(problems), flush=True)
        sys.exit(1)
    print("repository crash test passed: %d kills" % len(report))


if __name__ == "__main__":
    main()
