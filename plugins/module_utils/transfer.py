# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The staging protocol of a copy into a volume, and the decisions of a relocation or a restore.

A copy goes from a *source* to a *destination side*. A side is one volume on one
engine, reached from this host or through the Engine API (volume_access.py:
LocalRoot, ApiRoot); a source is such a side or a backup archive (archive.py:
ArchiveSource). Every source has ``manifest()`` and ``archive()``; every
destination ``receive()``, ``staged_manifest()``, ``state()`` and ``finish()``.

Staging protocol on the destination, which makes every run crash-safe:

1. the data goes to ``<root>/.persist-docker-staging/data`` (the visible tree
   is left as it was);
2. the staged tree's manifest is compared with the source's; only then
   ``.persist-docker-staging/state`` is written as ``verified <digest>``;
3. the old visible entries are removed, the state becomes ``moving <digest>``;
4. the staged entries are renamed into the root, the root gets the source
   root's owner and mode, the staging directory goes.

A run killed in 1-2 leaves a staging directory without a verified state: the
next run starts the copy again (the visible tree is then guarded as without a
staging directory: replaced only when empty or with force). Killed in 3-4: the
next run finishes the step it finds in the state file - but only a run that
would write that very digest, and only after it has verified the staged tree
against its source (plan_relocation, staged_copy); a staged copy of other data
is replaced only with force. The source is only read. Runs on one volume hold
its lock (locking.py), so a live run's staging is never taken for a leftover.

* :func:`plan_relocation`, :func:`refuse_options`, :func:`parse_state` -- the pure decisions.
* :func:`staged_copy` -- the protocol run (or resumed) from a source to a destination;
  :func:`copy_into` -- step 1, the fastest way the two sides allow.
* :func:`precopy_passes`, :func:`final_pass` -- step 1 made incremental: a *sync* (tree_sync.TreeSync)
  keeps the staged tree in step with the source over several passes (the first may be seeded with the
  files of an earlier copy), then the last pass, the verification (digests of files that did not change
  since a pass hashed them are reused) and steps 2-4 as above. The staged tree is only ever the run's
  own; the visible tree stays as it was until the verified copy replaces it.
"""

from __future__ import annotations

from ansible_collections.persist.docker.plugins.module_utils import manifest, resync
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

# The names, in the staging directory (manifest.STAGING), of the state file and of the staged tree.
STATE = "state"
DATA = "data"


# ---------------------------------------------------------------- pure: decisions

def parse_state(text):
    """The staging state from the state file's text: (word, digest) or ('partial', None)."""
    if text is None:
        return ("partial", None)
    parts = text.split()
    if len(parts) == 2 and parts[0] in ("verified", "moving"):
        return (parts[0], parts[1])
    return ("partial", None)


def refuse_options(mode, verify):
    """Why a combination of volume_relocate's options is refused, or None (pure)."""
    if mode == "move" and verify == "none":
        return ("mode: move with verify: none would remove the source without checking its copy; nothing was "
                "done. Use verify: size or checksum, or mode: copy")
    return None


def plan_relocation(source_exists, dest_exists, *, staging, in_sync, dest_empty, mode, force,  # noqa: PLR0911,PLR0913
                    ours=False, verify="checksum", earlier_copy=False):
    """What a relocation (or a restore) run does: (action, reason).

    ``staging`` is None (no staging directory) or the parse_state() tuple;
    ``ours`` whether its digest is the one this run would write (the source's,
    at the verify level); ``in_sync`` whether the visible destination equals
    the source at the verify level; ``dest_empty`` whether it holds nothing.
    Actions: ``none``, ``copy`` (into a new staging directory: a leftover one
    is discarded), ``resume`` (verify and finish this run's staged copy),
    ``remove-source`` (move whose copy is complete) and ``fail`` (reason says
    why). Only a staged copy of this very source is resumed; any other
    leftover staging guards the destination as other data does.
    ``earlier_copy``: the visible destination holds, unchanged, what an
    earlier run copied from this source (sync_record.earlier_copy): it is
    updated without force.
    """
    refusal = refuse_options(mode, verify)
    if refusal:
        return "fail", refusal
    if not source_exists:
        if mode == "move" and dest_exists and staging is None:
            return "none", "the source is gone and the destination holds the moved data"
        return "fail", "the source volume does not exist"
    if dest_exists and staging is not None and staging[0] != "partial":
        if ours:
            return "resume", "the destination holds a staged copy of this source from an interrupted run (%s)" \
                % staging[0]
        if not force:
            return "fail", ("the destination holds a staged copy of other data (%s %s) from an interrupted run"
                            % staging)
        return "copy", "the destination's staged copy of other data is replaced (force)"
    leftover = " (a partial staging directory left by an interrupted run is discarded)" \
        if dest_exists and staging is not None else ""
    if dest_exists and in_sync and not leftover:
        if mode == "move":
            return "remove-source", "the destination holds a verified copy; the source is removed"
        return "none", "the destination holds a verified copy of the source"
    if dest_exists and not dest_empty and not in_sync and not force and not earlier_copy:
        return "fail", "the destination volume holds other data" + leftover
    return "copy", "the destination %s%s" % ("does not exist" if not dest_exists else "holds a copy already"
                                             if in_sync else "is empty" if dest_empty else
                                             "holds an earlier copy of the source: only the difference is copied"
                                             if earlier_copy else "is replaced (force)", leftover)


def differing_paths(expected, actual):
    """The paths whose entries differ between two manifests (missing, unexpected or changed; pure)."""
    exp = dict((e["path"], e) for e in expected)
    act = dict((e["path"], e) for e in actual)
    return sorted((p for p in set(exp) | set(act) if exp.get(p) != act.get(p)), key=manifest.sort_key)


def throughput(nbytes, seconds):
    return int(nbytes / seconds) if seconds > 0 else 0


# ---------------------------------------------------------------- the staged copy

def copy_into(source, dest, checksum, counter):
    """Copy source's tree into dest's staging directory; return the source's manifest."""
    if source.how == "local" and dest.how == "local":
        return dest.receive_local(source, checksum, counter)
    if source.how == "archive" and dest.how == "local" and source.compression == "none":
        dest.receive_archive(source.path, counter, source.member_check())
        return source.manifest(checksum)
    if source.how == "snapshot" and dest.how == "local" and source.is_tree:
        dest.receive_members(source.members(counter))  # restic's dump parsed once, no tar made of it
        return source.manifest(checksum)
    entries = []
    dest.receive(source.archive(checksum, entries, counter))
    dest.fix_times(entries)
    return entries


def _differ(expected, actual, level):
    """The differences of two manifests at level (empty when they match)."""
    a, b = manifest.at_level(manifest.canonical(expected), level), manifest.at_level(manifest.canonical(actual), level)
    return [] if a == b else manifest.differences(a, b) or ["their manifests differ"]


def _staged_differ(expected, staged, level):
    """_differ() of a staged tree: its root's owner and mode are not compared (finish() gives the
    volume's root those of the source's root entry; the staged root itself is never used)."""
    root = [e for e in expected if e["path"] == ""]
    if root:
        staged = [dict(e, uid=root[0]["uid"], gid=root[0]["gid"], mode=root[0]["mode"]) if e["path"] == "" else e
                  for e in staged]
    return _differ(expected, staged, level)


def _mismatch(source, dest, differences):
    """The error of a staged copy that does not match its source."""
    return DockerError("the copy of volume '%s' to '%s' does not match its source (%s); the destination was left "
                       "unfinished and is not used; check that nothing writes to the source and run again"
                       % (source.name, dest.name, "; ".join(differences)))


def staged_copy(source, dest, level, state=None, checkpoint=None):
    """Run (or resume) the staging protocol from source to dest.

    state is None for a new copy (a leftover staging directory is discarded),
    or the parse_state() tuple of this run's own staged copy to resume
    (plan_relocation's ``resume``). A resumed copy is verified against the
    source before it is promoted ('verified': the staged tree; its staging is
    copied anew when it does not match) or, when part of it is in place
    already ('moving'), right after. Returns dict(entries, digest,
    bytes_copied, copied: bool). Raises DockerError when the copy does not
    match the source. checkpoint, when given, is called after a new copy,
    before it is marked verified.
    """
    checksum = level == "checksum"
    compare = "checksum" if checksum else "size"
    counter = [0]
    entries = None
    if state is not None and state[0] in ("verified", "moving"):
        entries = source.manifest(checksum)
        if manifest.digest(manifest.at_level(entries, compare)) != state[1]:
            raise DockerError("volume '%s' holds a staged copy of other data (%s %s), not of '%s'; nothing was moved "
                              "into place. Set force: true to replace it" % (dest.name, state[0], state[1],
                                                                             source.name))
        if state[0] == "verified" and _staged_differ(entries, dest.staged_manifest(checksum), compare):
            state = None  # the staged tree is not what its state says: stage it anew
    else:
        state = None
    copied = False
    if state is None:
        entries = copy_into(source, dest, checksum, counter)
        copied = True
        differences = _staged_differ(entries, dest.staged_manifest(checksum), compare) if level != "none" else []
        if differences:
            raise _mismatch(source, dest, differences)
        if checkpoint is not None:
            checkpoint()
        state = ("new", manifest.digest(manifest.at_level(entries, compare)))
    root = [e for e in entries if e["path"] == ""][0]
    dest.finish(state, root)
    if state[0] == "moving":
        differences = _differ(entries, dest.manifest(checksum), compare)
        if differences:
            raise DockerError("volume '%s': the copy that an interrupted run was moving into place does not match "
                              "'%s' (%s); the source is unchanged. Set force: true to copy it afresh"
                              % (dest.name, source.name, "; ".join(differences)))
    return dict(entries=entries, digest=manifest.digest(entries), bytes_copied=counter[0], copied=copied)


# ---------------------------------------------------------------- the incremental copy

def precopy_passes(sync, max_passes, threshold):
    """The passes of a pre-copy while the containers run: bytes copied by each (resync.next_pass)."""
    passes = []
    while resync.next_pass(passes, max_passes, threshold):
        passes.append(sync.run_pass(final=False))
    return passes


def final_pass(sync, source, dest, level, checkpoint=None):
    """The last pass of a sync (the source is still now), its verification and steps 2-4 of the protocol.

    Entries that do not verify are made anew once (a file an earlier copy
    seeded that only looked unchanged, a source that changed between two
    listings) and verified again. Returns dict(entries, stats, bytes_copied,
    digest) like staged_copy; stats are the source's stat keys
    (manifest.from_directory).
    """
    compare = "checksum" if level == "checksum" else "size"
    copied = sync.run_pass(final=True)
    entries, staged, stats = sync.manifests()
    if level != "none" and _staged_differ(entries, staged, compare):
        root = [e for e in entries if e["path"] == ""]
        sync.forget(p for p in differing_paths(manifest.at_level(entries, compare), manifest.at_level(
            [dict(e, uid=root[0]["uid"], gid=root[0]["gid"], mode=root[0]["mode"]) if e["path"] == "" else e
             for e in staged], compare)) if p)
        copied += sync.run_pass(final=True)
        entries, staged, stats = sync.manifests()
        differences = _staged_differ(entries, staged, compare)
        if differences:
            raise _mismatch(source, dest, differences)
    if checkpoint is not None:
        checkpoint()
    root = [e for e in entries if e["path"] == ""][0]
    dest.finish(("new", manifest.digest(manifest.at_level(entries, compare))), root)
    return dict(entries=entries, stats=stats, digest=manifest.digest(entries), bytes_copied=copied)
