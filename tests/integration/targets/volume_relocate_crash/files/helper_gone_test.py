#!/usr/bin/env python
"""A helper container that goes away mid-copy fails the relocation, it never hangs it.

volume_relocate copies through the Engine API to engine B with a destination
timeout of 5 s; as soon as its helper container (tar -x fed through its attached
stdin) is running, that container is removed, as another run's clean-up or an
operator would do. Then the write to it gets no answer: the run must fail within
the timeout with a message naming the volume, the source must be unchanged, and a
rerun must finish the copy.   Run as root: python3 helper_gone_test.py
"""

import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crash_test import ENGINE_A, ENGINE_B, Module, docker, mountpoint, tree  # noqa: E402

TIMEOUT = 5


def remove_helper_when_it_writes(proc, volume, deadline=60):
    """Remove the transfer helper that runs tar -x on volume as soon as it runs; the seconds it took."""
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < deadline:
        ids = docker(ENGINE_B, "ps", "-q", "--filter", "label=persist.docker.helper=transfer", "--filter",
                     "volume=" + volume).stdout.split()
        for cid in ids:
            if "tar -x" in docker(ENGINE_B, "inspect", "-f", "{{json .Config.Cmd}}", cid, check=False).stdout:
                docker(ENGINE_B, "rm", "-f", cid)
                return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError("no helper container writing to %s showed up" % volume)


def main():
    prefix = "pdg%d" % random.randint(0, 999999)
    tmp = tempfile.mkdtemp(prefix="pdgone")
    module = Module(tmp)
    source, dest = prefix + "-src", prefix + "-dst"
    try:
        docker(ENGINE_A, "volume", "create", source)
        with open(os.path.join(mountpoint(ENGINE_A, source), "blob"), "wb") as f:
            f.write(os.urandom(128 << 20))
        before = tree(mountpoint(ENGINE_A, source))
        args = dict(source=dict(name=source), destination=dict(name=dest, docker_host=ENGINE_B, timeout=TIMEOUT),
                    method="api")
        proc = module.start(args)
        removed = remove_helper_when_it_writes(proc, dest)
        try:
            out, _err = proc.communicate(timeout=TIMEOUT * 6)
        except Exception:
            proc.kill()
            raise AssertionError("the relocation still ran %d s after its helper was removed" % (TIMEOUT * 6)) from None
        msg = out.decode().strip().splitlines()[-1]
        assert '"failed": true' in msg and "volume '%s'" % dest in msg, msg
        # the helper is gone: either the engine says so, or the socket stays silent for the timeout
        assert ("lost the helper container while writing (it was removed)" in msg
                or "no answer for %d seconds" % TIMEOUT in msg) and "Traceback" not in msg, msg
        assert tree(mountpoint(ENGINE_A, source)) == before, "the source changed"
        again = module.run(args)
        assert again.get("changed") and not again.get("failed"), again
        assert tree(mountpoint(ENGINE_B, dest)) == before, "the rerun left a different copy"
        print("helper removed %.1f s into the copy: the run failed within %d s, the rerun finished the copy"
              % (removed, TIMEOUT * 6))
    finally:
        docker(ENGINE_A, "volume", "rm", "-f", source, check=False)
        docker(ENGINE_B, "volume", "rm", "-f", dest, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print("helper gone test passed")


if __name__ == "__main__":
    main()
