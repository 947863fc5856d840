#!/usr/bin/env python
"""Containers held still by a killed run run again after the next run, against the real engines.

The module process is SIGKILLed (as crash_test.py does) while it holds a container
still: volume_backup with quiesce: pause and quiesce: stop, volume_relocate with the
source's container stopped. After each kill the container is still paused or
stopped (the kill hit); the next run of the module on that volume unpauses or
starts it again and says so in its actions.   Run as root: python3 quiesce_test.py
"""

import os
import random
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crash_test import ENGINE_A, ENGINE_B, Module, docker, mountpoint  # noqa: E402

BACKUP = "ansible_collections.persist.docker.plugins.modules.volume_backup"
RELOCATE = "ansible_collections.persist.docker.plugins.modules.volume_relocate"
# A service that stops at once on SIGTERM (a plain sleep as PID 1 would take the 10 s stop timeout).
SERVICE = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]


def container_state(name):
    return docker(ENGINE_A, "inspect", "-f", "{{.State.Status}}", name).stdout.strip()


def kill_when(module, args, name, state, deadline=120):
    """Start the module and SIGKILL it once container name is in state; the state it was left in."""
    proc = module.start(args)
    end = time.monotonic() + deadline
    while proc.poll() is None and time.monotonic() < end:
        if container_state(name) == state:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed (%s): %s %s" % (
        state, out[-300:], err[-300:])
    return container_state(name)


def case(report, label, module, args, name, held, verb):
    left = kill_when(module, args, name, held)
    assert left == held, "%s: the killed run left %s %s, not %s" % (label, name, left, held)
    again = module.run(args)
    assert not again.get("failed"), again
    assert container_state(name) == "running", "%s: %s is %s after the rerun" % (label, name, container_state(name))
    wanted = "%s container '%s' again" % (verb, name)
    assert any(a.startswith(wanted) for a in again["actions"]), (label, again["actions"])
    report.append("%-32s killed while %-7s rerun: %s" % (label, held, wanted))
    print(report[-1], flush=True)


def main():
    prefix = "pdq%d" % random.randint(0, 999999)
    tmp = tempfile.mkdtemp(prefix="pdquiesce")
    os.environ["PERSIST_DOCKER_STATE_DIR"] = os.path.join(tmp, "state")
    backup, relocate = Module(tmp, BACKUP), Module(tmp, RELOCATE)
    report = []
    volume, app = prefix + "-data", prefix + "-app"
    try:
        docker(ENGINE_A, "volume", "create", volume)
        root = mountpoint(ENGINE_A, volume)
        with open(os.path.join(root, "blob"), "wb") as f:  # random data: gzip takes its time over it
            f.write(os.urandom(48 << 20))
        docker(ENGINE_A, "run", "-d", "--name", app, "--network", "none", "-v", volume + ":/data", "busybox:latest",
               *SERVICE)
        archive = os.path.join(tmp, "data.tar.gz")
        for how, held, verb in (("pause", "paused", "unpaused"), ("stop", "exited", "started")):
            args = dict(volume=volume, path=archive, quiesce=how, force=True)
            case(report, "volume_backup quiesce: %s" % how, backup, args, app, held, verb)
        args = dict(source=dict(name=volume), destination=dict(name=prefix + "-copy", docker_host=ENGINE_B),
                    method="api")
        case(report, "volume_relocate stop_containers", relocate, args, app, "exited", "started")
    finally:
        docker(ENGINE_A, "rm", "-f", app, check=False)
        docker(ENGINE_A, "volume", "rm", "-f", volume, check=False)
        docker(ENGINE_B, "volume", "rm", "-f", prefix + "-copy", check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    print("quiesce test passed: %d kills, every container running again after the rerun" % len(report))


if __name__ == "__main__":
    main()
