# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Containers held still around work on their volume: stop (or pause) -> work -> start (or unpause) again.

A run that stops or pauses the containers of a volume first writes a record of
them to a file on the host that runs the module (below :data:`STATE_DIR`, named
by the engine's ID and the volume, like the volume's lock), then stops them,
works, starts them again and removes the record (modules call
:func:`containers_stopped`, the one stop -> work -> start of the collection). A run killed in between
leaves the record behind; the next run on that volume (any of volume_relocate,
volume_restore, volume_backup, all under the volume's lock) calls
:func:`recover` first and starts or unpauses them again.
"""

from __future__ import annotations

import contextlib
import json
import os

from ansible_collections.persist.docker.plugins.module_utils import atomic, locking
from ansible_collections.persist.docker.plugins.module_utils.client import api_errors, get_or_none
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.volumes import containers_using

STATE_DIR = "/var/lib/persist-docker/quiesced"
STATE_DIR_ENV = atomic.STATE_DIR_ENV  # the records elsewhere (tests, unusual hosts)
HOW = ("stop", "pause", "none")
# The container state in which a record's entry still needs the undoing of its step.
_LEFT = {"stop": ("exited", "created"), "pause": ("paused",)}


# ---------------------------------------------------------------- pure

def backup_quiesce(quiesce, stop_containers):
    """How volume_backup holds the containers still: its option quiesce, else the older stop_containers."""
    if quiesce is not None:
        return quiesce
    return "stop" if stop_containers else "none"


def to_quiesce(users, how, skip=()):
    """The running containers among users that are stopped or paused for ``how`` (none: no container)."""
    if how == "none":
        return []
    return [u for u in users if u["running"] and u["id"] not in skip]


def torn_copy_warning(volume, users):
    """The warning of a backup that copies a volume while containers run and may write to it, or None."""
    running = [u["name"] for u in users if u["running"]]
    if not running:
        return None
    return ("volume '%s' is used by running containers (%s): the backup copies the data while they may change "
            "it, which can give a torn copy. Set quiesce: pause (freezes them for the copy) or quiesce: stop, or "
            "quiesce: none to accept this and silence this warning" % (volume, ", ".join(sorted(running))))


def to_undo(record, found):
    """The entries of a record whose step is still to be undone (pure).

    record: {'how', 'containers': [{'id', 'name'}]}; found: {id: state} of the
    containers that still exist. A container that was recreated (another id) or
    that runs again is left alone.
    """
    left = _LEFT.get(record.get("how"), ())
    return [c for c in record.get("containers", []) if found.get(c["id"]) in left]


# ---------------------------------------------------------------- the record on this host

def record_path(engine_key, volume):
    """The record of volume's containers on the engine of engine_key (locking.engine_id)."""
    name = locking.lock_file_name(engine_key, "volume", volume)
    return os.path.join(os.environ.get(STATE_DIR_ENV) or STATE_DIR, name[:-len(".lock")] + ".json")


def _write_record(path, how, users):
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        atomic.write_text(path, json.dumps(dict(how=how, containers=[dict(id=u["id"], name=u["name"]) for u in users])))
    except OSError as exc:
        raise DockerError("cannot record the containers to %s in %s (%s); nothing was stopped. Make the directory "
                          "writable or set %s" % (how, path, exc.strerror or exc, STATE_DIR_ENV)) from None


def _read_record(path):
    try:
        with open(path) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DockerError("the record of stopped containers %s cannot be read (%s); start the containers of its "
                          "volume by hand and remove it" % (path, exc)) from None
    return record if isinstance(record, dict) else None


def _remove_record(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# ---------------------------------------------------------------- acting on the engine

def _undo(api, how, container):
    """Start a stopped container or unpause a paused one; return the error text or None."""
    try:
        with api_errors("container '%s'" % container["name"]):
            if how == "pause":
                api.unpause(container["id"])
            else:
                api.start(container["id"])
    except DockerError as exc:
        return str(exc)
    return None


def recover(api, engine_key, volume, check_mode=False):
    """Undo what a killed run left stopped or paused on volume (call it under the volume's lock).

    Returns (actions, errors): what was (in check mode: would be) done, and the
    containers that could not be started again. The record goes either way: the
    errors are for a warning, not for a retry at every run.
    """
    path = record_path(engine_key, volume)
    record = _read_record(path)
    if record is None:
        return [], []
    found = {}
    for c in record.get("containers", []):
        attrs = get_or_none("container '%s'" % c.get("name"), api.inspect_container, c.get("id"))
        if attrs is not None:
            found[c["id"]] = (attrs.get("State") or {}).get("Status")
    undo = to_undo(record, found)
    how = record.get("how")
    actions = ["%s container '%s' again (left %s by an interrupted run)"
               % ("unpaused" if how == "pause" else "started", c["name"], _done(how)) for c in undo]
    if check_mode:
        return actions, []
    errors = [e for e in (_undo(api, how, c) for c in undo) if e]
    _remove_record(path)
    return actions, errors


def _done(how):
    return "paused" if how == "pause" else "stopped"


@contextlib.contextmanager
def held_still(api, engine_key, volume, users, how, subject, stop_timeout=10, keep_stopped=False):  # noqa: PLR0913
    """Stop (how=stop) or pause (how=pause) users for the block; start or unpause them after it.

    users are the containers to hold still (see :func:`to_quiesce`). They are
    recorded before the first is touched, so a run killed inside the block
    leaves them to :func:`recover`. Yields the names held still. A failure to
    start them again raises DockerError naming them (after the block's own
    error, if any, which it then extends). With keep_stopped (how=stop), a block
    that succeeds leaves them stopped (a service that moves elsewhere); one that
    fails starts them again.
    """
    if how == "none" or not users:
        yield []
        return
    path = record_path(engine_key, volume)
    _write_record(path, how, users)
    done = []
    failure = None
    succeeded = False
    try:
        for user in users:
            with api_errors("container '%s'" % user["name"]):
                if how == "pause":
                    api.pause(user["id"])
                else:
                    api.stop(user["id"], timeout=stop_timeout)
            done.append(user)
        yield [u["name"] for u in done]
        succeeded = True
    except DockerError as exc:
        failure = exc
    finally:
        left = succeeded and keep_stopped and how == "stop"
        errors = [] if left else [e for e in (_undo(api, how, u) for u in done) if e]
        _remove_record(path)
    if errors:
        raise DockerError("%scontainers %s for %s did not %s again: %s; start them by hand" % (
            "%s; and " % str(failure).rstrip(".") if failure else "", _done(how), subject,
            "start" if how == "stop" else "resume", "; ".join(errors))) from None
    if failure is not None:
        raise failure


@contextlib.contextmanager
def containers_stopped(api, engine_key, volume, how="stop", subject=None, users=None, keep_stopped=False):  # noqa: PLR0913
    """Stop (or pause, or with how=none leave) the running containers that use volume for the block.

    The one stop -> work -> start again of the collection: the containers are recorded
    for :func:`recover` before the first is touched (see :func:`held_still`), and
    started or unpaused again after the block, also when it fails (with keep_stopped,
    only when it fails). ``users`` are the volume's containers if the caller read them
    already (volumes.containers_using), else they are read here. Yields the names of
    the containers held still.
    """
    if how == "none":
        yield []
        return
    if users is None:
        users = containers_using(api, volume)
    subject = subject or "the work on volume '%s'" % volume
    with held_still(api, engine_key, volume, to_quiesce(users, how), how, subject,
                    keep_stopped=keep_stopped) as held:
        yield held
