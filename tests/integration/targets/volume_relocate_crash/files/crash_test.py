#!/usr/bin/env python
"""Crash safety of persist.docker.volume_relocate, against the real engines.

1. SIGKILL the module process at N points spread over a relocation from engine A
   to engine B (local path and Engine API path). After every kill: the source's
   tree is unchanged, and the destination either does not look complete (it is
   empty or still holds the staging directory) or already is a complete copy.
   A rerun then finishes, and the destination equals the source.
2. A scratch engine (never engine A or B) is killed in the middle of a copy into
   it: the module fails with a clear message and the source is unchanged.
3. A scratch engine with --userns-remap: the tree arrives with its ids shifted on
   disk (as the containers there see the original ids) and comes back identical.

The oracle below walks the mountpoints with os.lstat and hashlib; it shares no
code with the module.  Run as root: python3 crash_test.py [--kills N]
"""

import argparse
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
ENGINE_B = "unix:///run/docker-b.sock"
STAGING = ".persist-docker-staging"
HERE = os.path.dirname(os.path.abspath(__file__))
# Under ansible-test the collection lives in .../ansible_collections/persist/docker; in a
# checkout, `make collection` links it below .tmp/collections.
COLLECTIONS = (HERE[:HERE.index("/ansible_collections/")] if "/ansible_collections/" in HERE
               else os.path.abspath(os.path.join(HERE, *[".."] * 5, ".tmp", "collections")))
MODULE = "ansible_collections.persist.docker.plugins.modules.volume_relocate"
SCRATCH = dict(sock="/run/pd-crash.sock", root="/var/lib/pd-crash", exec_root="/run/pd-crash",
               pidfile="/run/pd-crash.pid", bridge="pd-crash0", net="172.31.254.1/24", log="/var/log/pd-crash.log")


def docker(host, *args, check=True, **kwargs):
    return subprocess.run(["docker", "-H", host, *args], check=check, capture_output=True, text=True, **kwargs)


def mountpoint(host, volume):
    return docker(host, "volume", "inspect", "-f", "{{.Mountpoint}}", volume).stdout.strip()


def volume_exists(host, volume):
    return docker(host, "volume", "inspect", volume, check=False).returncode == 0


def tree(root, skip=()):
    """{relative path: (type, mode, uid, gid, size, mtime, content digest or link target)}; the top-level
    directories named in skip (one a writer changes meanwhile) are left out with their trees."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d != STAGING and d not in skip]
        for name in dirnames + filenames + ([] if rel_dir != "." else ["."]):
            path = os.path.normpath(os.path.join(dirpath, name))
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(path)
            extra = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    extra = hashlib.file_digest(f, "sha256").hexdigest() if hasattr(hashlib, "file_digest") \
                        else hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            mtime = None if rel == "." or stat.S_ISLNK(st.st_mode) else int(st.st_mtime)
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        st.st_size if stat.S_ISREG(st.st_mode) else 0, mtime, extra)
    return out


def fill_source(root, megabytes):
    rnd = random.Random(5)
    os.makedirs(os.path.join(root, "big"))
    with open(os.path.join(root, "big", "blob"), "wb") as f:
        f.write(os.urandom(megabytes // 2 << 20))
    for d in range(10):
        sub = os.path.join(root, "dir %d" % d)
        os.makedirs(os.path.join(sub, "empty"))
        for i in range(40):
            with open(os.path.join(sub, "f%03d ü" % i), "wb") as f:
                f.write(os.urandom(rnd.randint(1, (megabytes << 20) // 800)))
        os.symlink("f000 ü", os.path.join(sub, "link"))
        os.link(os.path.join(sub, "f001 ü"), os.path.join(sub, "hard"))
        os.chown(os.path.join(sub, "f002 ü"), 1234, 5678)
        os.chmod(sub, 0o2775)
    os.symlink("nowhere", os.path.join(root, "dangling"))


class Module:
    def __init__(self, tmp, module=MODULE):
        self.tmp = tmp
        self.module = module
        self.env = dict(os.environ, PYTHONPATH=COLLECTIONS, ANSIBLE_MODULE_NO_LOG="0")

    def start(self, args):
        path = os.path.join(self.tmp, "args-%s.json" % time.monotonic_ns())
        with open(path, "w") as f:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
        return subprocess.Popen([sys.executable, "-m", self.module, path], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.env, cwd=self.tmp)

    def run(self, args):
        proc = self.start(args)
        out, err = proc.communicate(timeout=300)
        try:
            return json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise AssertionError("module printed no result: %s %s" % (out[-500:], err[-2000:])) from None


def destination_phase(host, volume, source_tree):
    """What a killed run left: absent, empty, staged (not complete-looking) or complete."""
    if not volume_exists(host, volume):
        return "absent"
    mp = mountpoint(host, volume)
    staged = os.path.exists(os.path.join(mp, STAGING))
    visible = tree(mp)
    if staged:
        state_file = os.path.join(mp, STAGING, "state")
        if os.path.exists(state_file):
            with open(state_file) as f:
                return "staged-" + f.read().split()[0]
        return "staged-partial"
    if set(visible) == {"."}:
        return "empty"
    if visible == source_tree:
        return "complete"
    raise AssertionError("a killed run left a destination without a staging directory that is neither empty "
                         "nor complete: %s" % sorted(set(visible) ^ set(source_tree))[:5])


def staged_bytes(data_dir):
    total = 0
    for dirpath, _dirnames, filenames in os.walk(data_dir):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def kill_points(kills):
    """Where to kill: the staging directory appears, 1/n .. all of the bytes staged, verified, moving."""
    steps = max(kills - 3, 1)
    points = [("staged", 0.0)] + [("staged", (i + 1) / steps) for i in range(steps)]
    return points + [("state", "verified"), ("state", "moving")]


def kill_at(module, args, point, volumes_dir, dest, source_bytes):
    """Start the module and SIGKILL it when the destination reaches point; True if it was killed."""
    proc = module.start(args)
    staging = os.path.join(volumes_dir, dest, "_data", STAGING)
    kind, value = point
    while proc.poll() is None:
        if os.path.isdir(staging):
            if kind == "staged" and staged_bytes(os.path.join(staging, "data")) >= value * source_bytes:
                break
            if kind == "state":
                try:
                    with open(os.path.join(staging, "state")) as f:
                        if f.read().startswith(value):
                            break
                except OSError:
                    pass
        time.sleep(0.002)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return killed


def kill_series(module, source, method, kills, report):
    src_mp = mountpoint(ENGINE_A, source)
    before = tree(src_mp)
    source_bytes = sum(v[4] for v in before.values())
    volumes_dir = os.path.join(docker(ENGINE_B, "info", "-f", "{{.DockerRootDir}}").stdout.strip(), "volumes")
    dest = source + "-" + method
    args = dict(source=dict(name=source), destination=dict(name=dest, docker_host=ENGINE_B), method=method)
    first = module.run(args)
    assert first.get("changed") and not first.get("failed"), first
    assert tree(mountpoint(ENGINE_B, dest)) == before, "uninterrupted copy differs"
    docker(ENGINE_B, "volume", "rm", dest)
    killed = 0
    for point in kill_points(kills):
        was_killed = kill_at(module, args, point, volumes_dir, dest, source_bytes)
        killed += was_killed
        phase = destination_phase(ENGINE_B, dest, before)
        assert tree(src_mp) == before, "source changed after a kill at %s" % (point,)
        again = module.run(args)
        assert not again.get("failed"), again
        assert tree(mountpoint(ENGINE_B, dest)) == before, "rerun after a kill at %s left a different copy" % (point,)
        assert not os.path.exists(os.path.join(mountpoint(ENGINE_B, dest), STAGING))
        assert tree(src_mp) == before
        report.append("%-5s kill at %-22s %-6s left %-15s rerun %s" % (
            method, "%s %s" % point if point[0] == "state" else "%s %3d%%" % (point[0], point[1] * 100),
            "killed" if was_killed else "ended", phase, again.get("action")))
        print(report[-1], flush=True)
        docker(ENGINE_B, "volume", "rm", dest)
    return killed


def start_scratch_engine(*extra):
    s = SCRATCH
    if subprocess.run(["ip", "link", "show", s["bridge"]], check=False, capture_output=True).returncode != 0:
        subprocess.run(["ip", "link", "add", s["bridge"], "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", s["net"], "dev", s["bridge"]], check=True)
        subprocess.run(["ip", "link", "set", s["bridge"], "up"], check=True)
    log = open(s["log"], "ab")  # noqa: SIM115 -- the daemon writes to it until it is killed
    proc = subprocess.Popen(["dockerd", "-H", "unix://" + s["sock"], "--data-root", s["root"], "--exec-root",
                             s["exec_root"], "--pidfile", s["pidfile"], "--bridge", s["bridge"],
                             "--iptables=false", *extra], stdout=log, stderr=log, start_new_session=True)
    for _attempt in range(240):
        if docker("unix://" + s["sock"], "info", check=False).returncode == 0:
            return proc
        time.sleep(0.25)
    proc.kill()
    raise AssertionError("the scratch engine did not start; see %s" % s["log"])


def scratch_processes():
    """Pids of the processes of the scratch engine: dockerd's containerd and the shims of its containers."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    if SCRATCH["exec_root"].encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


def stop_scratch_engine(proc):
    """Kill the scratch dockerd (if alive) and what it left running, by pid, and wait for them."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for _attempt in range(40):
        pids = scratch_processes()
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.25)
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f if SCRATCH["root"] in line.split()[1]
                  or SCRATCH["exec_root"] in line.split()[1]]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    shutil.rmtree(SCRATCH["exec_root"], ignore_errors=True)


def engine_killed_mid_copy(module, source, report):
    """Kill a scratch engine during a copy into it: a clear error, the source intact."""
    s = SCRATCH
    host = "unix://" + s["sock"]
    src_mp = mountpoint(ENGINE_A, source)
    before = tree(src_mp)
    proc = start_scratch_engine()
    try:
        images = subprocess.Popen(["docker", "-H", ENGINE_A, "save", "busybox:latest"], stdout=subprocess.PIPE)
        subprocess.run(["docker", "-H", host, "load", "-q"], stdin=images.stdout, check=True,
                       capture_output=True)
        images.wait()
        for method in ("api", "local"):
            if proc.poll() is not None:
                stop_scratch_engine(proc)
                proc = start_scratch_engine()
            dest = "%s-scratch-%s" % (source, method)
            run = module.start(dict(source=dict(name=source), destination=dict(name=dest, docker_host=host),
                                    method=method))
            # wait until the copy is under way: the staging directory exists on the scratch engine
            deadline = time.monotonic() + 60
            staged = os.path.join(s["root"], "volumes", dest, "_data", STAGING)
            while not os.path.exists(staged) and run.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            if method == "api":
                time.sleep(0.1)  # into the stream; the local copy asks the engine only after it (and takes 0.1 s)
            proc.kill()  # the engine dies: dockerd only, as a crash or an OOM kill would do
            proc.wait()
            out, _err = run.communicate(timeout=300)
            result = json.loads(out.decode().strip().splitlines()[-1])
            assert result.get("failed"), "the relocation into a killed engine did not fail: %s" % result
            msg = result["msg"]
            assert "Traceback" not in msg and "\n" not in msg, msg
            assert "destination" in msg or host in msg, msg
            assert tree(src_mp) == before, "source changed when the destination engine died"
            report.append("scratch engine killed mid-copy (%s): %s" % (method, msg))
            print(report[-1], flush=True)
    finally:
        stop_scratch_engine(proc)
        shutil.rmtree(s["root"], ignore_errors=True)
        subprocess.run(["ip", "link", "del", s["bridge"]], check=False, capture_output=True)


def shifted(tree_, offset):
    """A tree as a user-namespaced engine stores it: ids shifted by offset."""
    return dict((k, (v[0], v[1], v[2] + offset, v[3] + offset) + v[4:]) for k, v in tree_.items())


def userns_round_trip(module, source, report):
    """Relocate to a scratch engine with --userns-remap: ids arrive shifted on disk, come back unshifted."""
    s = SCRATCH
    host = "unix://" + s["sock"]
    src_mp = mountpoint(ENGINE_A, source)
    before = tree(src_mp)
    proc = start_scratch_engine("--userns-remap=default")
    try:
        root_dir = docker(host, "info", "-f", "{{.DockerRootDir}}").stdout.strip()
        offset = int(os.path.basename(root_dir).split(".")[0])
        assert offset > 0, "the scratch engine does not remap ids (%s)" % root_dir
        images = subprocess.Popen(["docker", "-H", ENGINE_A, "save", "busybox:latest"], stdout=subprocess.PIPE)
        subprocess.run(["docker", "-H", host, "load", "-q"], stdin=images.stdout, check=True, capture_output=True)
        images.wait()
        for method, strategy in (("local", "stop_copy"), ("api", "stop_copy"), ("local", "precopy"),
                                 ("api", "precopy")):
            there = "%s-userns-%s-%s" % (source, method, strategy)
            result = module.run(dict(source=dict(name=source), destination=dict(name=there, docker_host=host),
                                     method=method, strategy=strategy))
            assert result.get("changed") and not result.get("failed") and not result.get("warnings"), result
            assert result["method"] == method, result
            assert (strategy == "precopy") == (len(result["passes"]) >= 2), result  # a precopy, not a fallback
            assert tree(mountpoint(host, there)) == shifted(before, offset), "ids not shifted by %d" % offset
            back = "%s-back-%s-%s" % (source, method, strategy)
            result = module.run(dict(source=dict(name=there, docker_host=host),
                                     destination=dict(name=back, docker_host=ENGINE_A), method=method,
                                     strategy=strategy))
            assert result.get("changed") and not result.get("failed") and not result.get("warnings"), result
            assert (strategy == "precopy") == (len(result["passes"]) >= 2), result
            assert tree(mountpoint(ENGINE_A, back)) == before, "the round trip through userns changed ids"
            report.append("userns-remap engine (%s, %s): ids stored +%d there, identical after the way back"
                          % (method, strategy, offset))
            print(report[-1], flush=True)
        # an owner the remapped engine's containers cannot see (host uid 7) stops a precopy through the API
        there = "%s-userns-api-precopy" % source
        victim = next(k for k, v in sorted(tree(mountpoint(host, there)).items()) if stat.S_ISREG(v[0]))
        os.lchown(os.path.join(mountpoint(host, there), victim), 7, 7)
        back = "%s-unmapped" % source
        result = module.run(dict(source=dict(name=there, docker_host=host), destination=dict(
            name=back, docker_host=ENGINE_A), method="api", strategy="precopy"))
        assert result.get("failed") and "outside the user namespace" in result["msg"], result
        assert repr(victim) in result["msg"], result["msg"]
        assert not volume_exists(ENGINE_A, back) or not set(os.listdir(mountpoint(ENGINE_A, back))) - {STAGING}, \
            "data arrived"
        report.append("userns-remap engine: an owner outside its namespace stops a precopy: %s" % result["msg"][:160])
        print(report[-1], flush=True)
    finally:
        stop_scratch_engine(proc)
        shutil.rmtree(s["root"], ignore_errors=True)
        subprocess.run(["ip", "link", "del", s["bridge"]], check=False, capture_output=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=12, help="kill points per path (local, api)")
    parser.add_argument("--megabytes", type=int, default=64, help="size of the source volume")
    opts = parser.parse_args()
    source = "pdcrash%d" % random.randint(0, 999999)
    tmp = tempfile.mkdtemp(prefix="pdcrash")
    module = Module(tmp)
    report = []
    try:
        docker(ENGINE_A, "volume", "create", source)
        fill_source(mountpoint(ENGINE_A, source), opts.megabytes)
        killed = {}
        for method in ("local", "api"):
            killed[method] = kill_series(module, source, method, opts.kills, report)
        engine_killed_mid_copy(module, source, report)
        userns_round_trip(module, source, report)
    finally:
        for host, prefix in ((ENGINE_A, source), (ENGINE_B, source)):
            names = docker(host, "volume", "ls", "-q", "--filter", "name=" + prefix, check=False).stdout.split()
            if names:
                docker(host, "volume", "rm", "-f", *names, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    for method, count in killed.items():
        assert count >= 10, "only %d of the %s runs were still running when killed" % (count, method)
    print("crash test passed: %s" % ", ".join("%d kills (%s)" % (n, m) for m, n in killed.items()))


if __name__ == "__main__":
    main()
