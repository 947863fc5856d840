#!/usr/bin/env python
"""A helper container that goes away mid-copy never hangs the relocation nor leaves a wrong copy.

volume_relocate copies through the Engine API to engine B with a destination
timeout of 5 s; the tree is written with PUT /containers/{id}/archive of a
helper container (label persist.docker.helper=receive, it never runs). As soon
as that helper exists it is removed, as another run's clean-up or an operator
would do. Either the removal comes first: the write is refused and the run must
fail within the timeout with a message naming the volume and saying the helper
was removed; or the write has the helper already: the engine holds the removal
until the write ends and the run finishes the copy. In both cases the source is
unchanged, no run takes longer than the bound, and the destination (after a
rerun when the first run failed) holds exactly the source's tree.
Run as root: python3 helper_gone_test.py
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
    """Remove the transfer helper that takes the archive for volume as soon as it exists; the seconds it took."""
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < deadline:
        ids = docker(ENGINE_B, "ps", "-a", "-q", "--filter", "label=persist.docker.helper=receive", "--filter",
                     "volume=" + volume).stdout.split()
        for cid in ids:
            docker(ENGINE_B, "rm", "-f", cid, check=False)
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
        assert "Traceback" not in msg, msg
        if '"failed": true' in msg:
            # the removal came first: the engine refused the write, and the message says so
            assert "volume '%s'" % dest in msg and "lost the helper container while writing" in msg, msg
            assert "(it was removed)" in msg or "no answer for %d seconds" % TIMEOUT in msg, msg
            assert tree(mountpoint(ENGINE_A, source)) == before, "the source changed"
            again = module.run(args)
            assert again.get("changed") and not again.get("failed"), again
            outcome = "the run failed within %d s, the rerun finished the copy" % (TIMEOUT * 6)
        else:
            # the write held the helper: the engine removed it after the write, the run finished the copy
            assert '"changed": true' in msg, msg
            outcome = "the engine held the removal until the write ended, the run finished the copy"
        assert tree(mountpoint(ENGINE_B, dest)) == before, "the copy differs from the source"
        print("helper removed %.1f s into the copy: %s" % (removed, outcome))
    finally:
        docker(ENGINE_A, "volume", "rm", "-f", source, check=False)
        docker(ENGINE_B, "volume", "rm", "-f", dest, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print("helper gone test passed")


if __name__ == "__main__":
    main()
