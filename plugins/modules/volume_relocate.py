#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_relocate
short_description: Copy or move a Docker volume's data to another volume, driver or Docker host, verified
version_added: 0.1.0
description:
  - Copies the data of the volume O(source.name) to the volume O(destination.name), on the same or on
    another engine (O(source.docker_host), O(destination.docker_host)), and for O(mode=move) removes
    the source once the destination is verified.
  - The destination is created when it does not exist, with O(destination.driver),
    O(destination.driver_opts) and the source's labels (O(copy_labels)) merged with
    O(destination.labels).
  - Verification (O(verify=checksum)) compares a manifest of every entry - type, mode (setuid, setgid
    and sticky bits included), numeric uid and gid as containers see them, size, mtime in seconds,
    sha256 of the content or the link target, hard link groups - computed on both sides.
  - Crash-safe. The source is only read. The data is staged in a hidden directory
    (V(.persist-docker-staging)) of the destination and moved into place only after verification; a
    run killed at any point leaves no destination that looks complete, and the next run finishes the
    job.
  - Idempotent. A destination that already holds a verified copy of the unchanged source reports no
    change.
  - Incremental. When both mountpoints are usable here, a copy is a sync - it compares both sides'
    C(lstat) (type, size, mtime in ns, mode, owner, and the source's inode and ctime) and copies only
    what differs. A destination that holds, unchanged, what an earlier run copied from this source (an
    I(earlier copy)) is updated without O(force) - only its differences are copied, what the source no
    longer has is deleted, and the full manifest is still compared at the end. The staged tree starts
    as hard links to the earlier copy's unchanged files; a changed file is always written as a new
    file, so the visible tree stays as it was until the verified copy replaces it (crash safety as
    above). Through the Engine API (engines reached as C(ssh://) included) a copy onto an earlier copy is
    a sync too - both trees are listed by helper containers, their files hashed with C(sha256sum) on
    their own hosts (only those whose stat key is not the one the record of an earlier run holds), the
    staged tree starts as hard links alike, and only the difference is streamed.
    What makes a destination an earlier copy, and the digests of unchanged files that the next
    run reuses instead of reading them again, are kept on the host that runs the module (below
    C(/var/lib/persist-docker/relocate), or E(PERSIST_DOCKER_STATE_DIR)); without that record a
    destination with data counts as other data (O(force)).
  - Pre-copy (O(strategy=precopy)). The source is copied while its containers run, in passes that copy
    only what changed since the pass before, until a pass copies at most O(precopy_threshold_bytes)
    bytes, O(precopy_max_passes) passes are made, or a pass copies no less than the one before; then the
    containers are stopped for the last pass, the verification (digests of files unchanged since a pass
    hashed them - same inode, size, mtime and ctime - are reused, so the downtime does not read the whole
    volume again) and the move into place, and started again. RV(downtime_seconds) reports how long
    they were stopped. Through the Engine API (engines reached as C(ssh://) included) the passes work alike -
    both trees are listed by helper containers, only the added and changed entries are streamed (and hashed as
    they go), and the final verification takes the source's manifest from the last listing and those digests
    (a file whose inode, size, mtime or ctime changed since it was sent is sent again in the last pass), so the
    source is not read again while its containers are stopped; nor is the staged copy, checked by its listing and
    the digests of what was sent into each of its files, while they are unchanged since (as the copy between
    mountpoints reuses the digests of the copies it makes).
  - Streaming. When both engines are on local Unix sockets and both mountpoints are usable here, the
    files are copied directly between the mountpoints (holes of sparse files are kept, ids are mapped
    through each engine's userns-remap); otherwise the data streams through the Engine API, read by
    C(GET /containers/{id}/archive) and written by C(PUT /containers/{id}/archive) of a helper container.
    The manifest of a volume on a remote engine (not on a local Unix socket) is made on that engine's host
    - listed and hashed with C(sha256sum) in a helper container - so the verification of a copy sends only
    listings and digests over the connection, not the data again. No volume is ever held in memory.
  - Concurrent runs. A run holds the lock of both volumes (see O(lock_timeout)) from reading their state
    to its end; a second run on either volume waits for it, or fails after O(lock_timeout) seconds
    without changing anything. It never takes over the staging directory or the helper containers of a
    live run. A helper container that dies or stops answering fails the run with a message after the
    connection's O(timeout), never hangs it.
  - A staging directory left by an interrupted run is only resumed when its state says it holds a copy
    of this very source (same manifest digest at the O(verify) level), and that copy is verified
    against the source before it is moved into place. Any other leftover - a partial staging
    directory, or a staged copy of other data - guards the destination as other data does - it is
    replaced only when the destination is empty or O(force=true).
extends_documentation_fragment:
  - persist.docker.docker
  - persist.docker.attributes
  - persist.docker.attributes.actiongroup_docker
  - persist.docker.lock
attributes:
  check_mode:
    support: full
    description: Reads both sides and predicts exactly whether a real run copies, resumes or removes.
  diff_mode:
    support: full
    description: Shows the destination (existence, manifest digest) and the source before and after.
  idempotent:
    support: full
    description: A second run reports no change.
options:
  source:
    description:
      - The volume to read. Connection options not given here are taken from the module's own
        connection options (O(docker_host) and the TLS options).
    type: dict
    required: true
    suboptions:
      name:
        description: Name of the volume.
        type: str
        required: true
      docker_host:
        description: The engine of this volume; see the module's O(docker_host).
        type: str
      tls:
        description: See the module's O(tls).
        type: bool
      validate_certs:
        description: See the module's O(validate_certs).
        type: bool
      ca_path:
        description: See the module's O(ca_path).
        type: path
      client_cert:
        description: See the module's O(client_cert).
        type: path
      client_key:
        description: See the module's O(client_key).
        type: path
      api_version:
        description: See the module's O(api_version).
        type: str
      timeout:
        description: See the module's O(timeout).
        type: int
      tls_hostname:
        description: See the module's O(tls_hostname).
        type: str
      use_ssh_client:
        description: See the module's O(use_ssh_client).
        type: bool
  destination:
    description:
      - The volume to write, with the connection options of its engine (defaults as for O(source)).
    type: dict
    required: true
    suboptions:
      name:
        description: Name of the volume.
        type: str
        required: true
      docker_host:
        description: The engine of this volume; see the module's O(docker_host).
        type: str
      tls:
        description: See the module's O(tls).
        type: bool
      validate_certs:
        description: See the module's O(validate_certs).
        type: bool
      ca_path:
        description: See the module's O(ca_path).
        type: path
      client_cert:
        description: See the module's O(client_cert).
        type: path
      client_key:
        description: See the module's O(client_key).
        type: path
      api_version:
        description: See the module's O(api_version).
        type: str
      timeout:
        description: See the module's O(timeout).
        type: int
      tls_hostname:
        description: See the module's O(tls_hostname).
        type: str
      use_ssh_client:
        description: See the module's O(use_ssh_client).
        type: bool
      driver:
        description:
          - Volume driver of a destination the module creates. An existing destination must have this
            driver.
        type: str
        default: local
      driver_opts:
        description: Driver options of a destination the module creates.
        type: dict
        default: {}
      labels:
        description: Labels of a destination the module creates, merged over the source's labels.
        type: dict
        default: {}
  mode:
    description:
      - V(copy) keeps the source; V(move) removes it after the destination is verified. A move refuses
        a source that containers use (they keep a volume from being removed); remove them first.
      - V(move) with O(verify=none) is refused - the source would be removed unchecked.
    type: str
    choices: [copy, move]
    default: copy
  verify:
    description:
      - V(checksum) compares the full manifest, content digests included; V(size) compares it without
        the content digests; V(none) skips the comparison after the copy (the idempotence check then
        compares sizes). A resumed copy is compared at least by size. V(none) is refused with
        O(mode=move).
    type: str
    choices: [checksum, size, none]
    default: checksum
  stop_containers:
    description:
      - Stop the running containers that use the source, and those that use an existing destination whose
        data is replaced, for the copy, and start them again afterwards.
      - They are recorded on the host that runs the module (below C(/var/lib/persist-docker/quiesced), or
        E(PERSIST_DOCKER_STATE_DIR)) before they are stopped; when a run is killed meanwhile, the next
        run on either volume (relocation, restore or backup) starts them again.
    type: bool
    default: true
  restart_containers:
    description:
      - Start the source's containers that O(stop_containers) stopped again once the copy is done. V(false)
        leaves them stopped after a successful run, for a service that moves to the destination (the
        persist.docker.relocate role starts it there); after a failed run they are started again either way.
    type: bool
    default: true
  copy_labels:
    description:
      - Give a destination the module creates the labels of the source.
    type: bool
    default: true
  force:
    description:
      - Replace the data of a destination that holds other data.
    type: bool
    default: false
  method:
    description:
      - V(auto) copies between the mountpoints when both are usable here, else through the Engine API;
        V(local) insists on the first, V(api) on the second.
    type: str
    choices: [auto, local, api]
    default: auto
  strategy:
    description:
      - V(stop_copy) stops the containers that use the source for the whole copy; V(precopy) copies while
        they run and stops them only for the last pass (see the description).
      - With both mountpoints usable here, V(precopy) syncs the mountpoints; otherwise (O(method=api), an
        engine reached as C(ssh://)) each pass lists both trees in helper containers and streams only what
        was added or changed since the pass before through the Engine API of each side (owners mapped through
        each engine's userns-remap). A copy that resumes an interrupted run is made with V(stop_copy), with a
        warning.
    type: str
    choices: [stop_copy, precopy]
    default: stop_copy
  precopy_max_passes:
    description:
      - The most passes made while the containers run (O(strategy=precopy)).
    type: int
    default: 5
  precopy_threshold_bytes:
    description:
      - A pass that copies at most this many bytes is the last one made while the containers run
        (O(strategy=precopy)).
    type: int
    default: 67108864
  helper_image:
    description:
      - Image of the helper containers used through the Engine API (needs C(sh), C(find), C(stat),
        C(cp), C(ln) and C(sha256sum), as busybox has); it must exist on the engines involved.
    type: str
    default: busybox:latest
notes:
  - Through the Engine API, holes of sparse files are written as zeros (the content is identical).
  - Check mode predicts the action; it does not predict RV(passes) nor RV(bytes_copied).
  - Modification times are compared in whole seconds, and the mtime of the volume root is not compared.
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: Move the uploads volume to another Docker host
  persist.docker.volume_relocate:
    source:
      name: uploads
    destination:
      name: uploads
      docker_host: tcp://docker2.example.com:2376
      validate_certs: true
    mode: move

- name: Copy a volume to an NFS-backed volume on the same engine
  persist.docker.volume_relocate:
    source:
      name: pgdata
    destination:
      name: pgdata-nfs
      driver_opts:
        type: nfs
        o: addr=10.0.0.5,rw
        device: ":/exports/pgdata"

- name: Move the data of a running service with a short stop (pre-copy, then the last delta)
  persist.docker.volume_relocate:
    source:
      name: pgdata
    destination:
      name: pgdata-fast
    strategy: precopy
    precopy_threshold_bytes: 16777216
  register: moved

- name: Show how long the service was stopped
  ansible.builtin.debug:
    msg: "{{ moved.downtime_seconds }} s, {{ moved.passes | length }} passes"

- name: Pre-copy a running service's volume to another host over ssh, and leave it stopped on the source
  persist.docker.volume_relocate:
    source:
      name: uploads
    destination:
      name: uploads
      docker_host: ssh://deploy@docker2.example.com
    strategy: precopy
    restart_containers: false

- name: Wait at most a minute for another run on these volumes, then fail
  persist.docker.volume_relocate:
    source:
      name: uploads
    destination:
      name: uploads-copy
    lock_timeout: 60
"""

RETURN = r"""
action:
  description: What the run did - V(none), V(copy), V(resume) (finished an interrupted run) or V(remove-source).
  returned: success
  type: str
  sample: copy
reason:
  description: Why.
  returned: success
  type: str
method:
  description: V(local) (between the mountpoints) or V(api) (through the Engine API); V(null) when nothing was copied.
  returned: success
  type: str
digest:
  description: Digest of the manifest of the data (the source's, equal to the destination's after the run).
  returned: success
  type: str
  sample: sha256:0f3c...
bytes:
  description: Bytes of file content in the source.
  returned: success
  type: int
files:
  description: Entries in the source (files, directories, links), without its root.
  returned: success
  type: int
bytes_copied:
  description:
    - Bytes of file content copied by this run - the summed size of the files added and changed (all passes).
  returned: success
  type: int
strategy:
  description: The strategy asked for (O(strategy)).
  returned: success
  type: str
passes:
  description:
    - The passes of the copy, in order; the last (C(final=true)) ran with the containers stopped. Empty when
      nothing was copied.
  returned: success
  type: list
  elements: dict
  contains:
    bytes_copied:
      description: Bytes of file content this pass copied.
      type: int
    final:
      description: Whether this is the pass made with the containers stopped.
      type: bool
downtime_seconds:
  description:
    - Seconds from the request to stop the containers to their start again (the whole copy with
      V(stop_copy), the last pass, verification and move into place with V(precopy)); 0 when nothing was copied.
      With O(restart_containers=false), to the end of the move into place.
  returned: success
  type: float
seconds:
  description: Time the copy and its verification took.
  returned: success
  type: float
throughput:
  description: Bytes copied per second.
  returned: success
  type: int
created:
  description: Whether the destination volume was created.
  returned: success
  type: bool
source_removed:
  description: Whether the source volume was removed (O(mode=move)).
  returned: success
  type: bool
stopped_containers:
  description: Containers stopped for the copy (users of the source and of the destination) and started again.
  returned: success
  type: list
  elements: str
actions:
  description:
    - What was done (or would be done in check mode), including containers started again that an
      interrupted run had left stopped.
  returned: success
  type: list
  elements: str
"""

import contextlib
import time

from ansible_collections.persist.docker.plugins.module_utils import (
    containers,
    locking,
    manifest,
    sync_record,
    transfer,
)
from ansible_collections.persist.docker.plugins.module_utils import volume_access as va
from ansible_collections.persist.docker.plugins.module_utils.client import (
    CONNECTION_OPTIONS,
    SIDE_CONNECTION_ARGS,
    DockerModule,
    api_errors,
    connect,
)
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError, os_errors
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager
from ansible_collections.persist.docker.plugins.module_utils.volumes import (
    check_driver,
    container_names,
    containers_using,
    inspect_volume,
    require_lasting,
    validate_volume_name,
)


def side_params(module_params, side):
    """The connection options of one side: its own, else the module's."""
    return dict((k, side[k] if side.get(k) is not None else module_params[k]) for k in CONNECTION_OPTIONS)


def connect_side(params, what):
    try:
        return connect(params)
    except DockerError as exc:
        raise DockerError("%s engine: %s" % (what, exc)) from None


class VolumeRelocateManager(Manager):
    def run(self):
        p = self.params
        refusal = transfer.refuse_options(p["mode"], p["verify"])
        if refusal:
            raise DockerError(refusal)
        if p["precopy_max_passes"] < 1 or p["precopy_threshold_bytes"] < 0:
            raise DockerError("precopy_max_passes must be at least 1 and precopy_threshold_bytes at least 0 (got %d "
                              "and %d); nothing was copied" % (p["precopy_max_passes"], p["precopy_threshold_bytes"]))
        src_name = validate_volume_name(p["source"]["name"])
        dst_name = validate_volume_name(p["destination"]["name"])
        self.names = (src_name, dst_name)
        src_params = side_params(p, p["source"])
        dst_params = side_params(p, p["destination"])
        if src_name == dst_name and src_params["docker_host"] == dst_params["docker_host"]:
            raise DockerError("source and destination are the same volume '%s' on %s; name another volume or "
                              "another docker_host" % (src_name, src_params["docker_host"]))
        self.src_api = connect_side(src_params, "source")
        self.dst_api = connect_side(dst_params, "destination")
        self.src_host, self.dst_host = src_params["docker_host"], dst_params["docker_host"]
        self.checksum = p["verify"] == "checksum"
        self.compare = "checksum" if self.checksum else "size"
        self.engines = (locking.engine_id(self.src_api, "source engine %s" % self.src_host),
                        locking.engine_id(self.dst_api, "destination engine %s" % self.dst_host))
        keys = [(self.engines[0], "volume", src_name), (self.engines[1], "volume", dst_name)]
        self.record_paths = [sync_record.path_of(locking.lock_file_name(*k)[:-len(".lock")] + ".json") for k in keys]
        self.source_key = [self.engines[0], src_name]
        # The records of held containers need each engine's full identity (engines may share an ID).
        with locking.held_all(keys, timeout=p["lock_timeout"]):
            return self.relocate()

    def relocate(self):
        p = self.params
        src_name, dst_name = self.names
        for api, engine, name in ((self.src_api, self.engines[0], src_name), (self.dst_api, self.engines[1], dst_name)):
            actions, errors = containers.recover(api, engine, name, self.dm.check_mode)
            self.actions.extend(actions)
            for error in errors:
                self.dm.warn(error)
        state = self.read_state()
        action, reason = transfer.plan_relocation(
            state["source_attrs"] is not None, state["dest_attrs"] is not None, staging=state["staging"],
            in_sync=state["in_sync"], dest_empty=state["dest_entries"] is None
            or manifest.is_empty(state["dest_entries"]), mode=p["mode"], force=p["force"], ours=state["ours"],
            verify=p["verify"], earlier_copy=state["earlier_copy"])
        if action == "fail":
            self.refuse(state, reason)
        result = dict(action=action, reason=reason, method=None, strategy=p["strategy"],
                      created=False, source_removed=False, stopped_containers=[],
                      bytes_copied=0, seconds=0.0, throughput=0, passes=[], downtime_seconds=0.0)
        dst_entries = state["dest_entries"]
        before = dict(source=state["source_attrs"] is not None, destination=state["dest_attrs"] is not None,
                      digest=manifest.digest(dst_entries) if dst_entries is not None else None)
        if action == "none":
            self.summarize(result, state["source_entries"] or dst_entries)
            if not self.dm.check_mode and state["in_sync"]:
                self.remember(state["source_entries"], state["stats"][0], dst_entries, state["stats"][1])
            return self.finish(result, before, before)
        self.plan_actions(result, action, state)
        if state["source_entries"] is None and state["source"] is not None and self.dm.check_mode:
            state["source_entries"] = state["source"].manifest(self.checksum)
        self.summarize(result, state["source_entries"] or dst_entries)
        after = dict(source=p["mode"] == "copy", destination=True, digest=result["digest"])
        if self.dm.check_mode:
            return self.finish(result, before, after)
        if action in ("copy", "resume"):
            self.copy(result, state, action)
            after["digest"] = result["digest"]
        if result["source_removed"]:
            with api_errors("source volume '%s' on %s" % (src_name, self.src_host)):
                self.src_api.remove_volume(src_name)
            sync_record.forget(self.record_paths[0])
        return self.finish(result, before, after)

    def remember(self, src_entries, src_stats, dst_entries, dst_stats):
        """Keep the stat keys and digests of both sides, and that the destination is a copy of this source."""
        if src_entries is None or dst_entries is None:
            return
        if src_stats:
            sync_record.save(self.record_paths[0], sync_record.files_of(src_entries, src_stats))
        # the digests of what the run found or wrote equal to the source, not of a read of the destination made
        # after its containers started again: data they wrote meanwhile is theirs, not part of the copy
        copy_of = dict(sync_record.digests(src_entries), source=self.source_key)
        sync_record.save(self.record_paths[1], sync_record.files_of(dst_entries, dst_stats), copy_of)

    def read_state(self):
        """Both volumes, their users, the staging state and both manifests (when they are needed)."""
        p = self.params
        src_name, dst_name = self.names
        src_attrs = inspect_volume(self.src_api, src_name)
        dst_attrs = inspect_volume(self.dst_api, dst_name)
        if dst_attrs is not None and dst_attrs.get("Driver") != p["destination"]["driver"]:
            raise DockerError("destination volume '%s' exists with driver %s, not %s; remove it or give driver %s"
                              % (dst_name, dst_attrs.get("Driver"), p["destination"]["driver"],
                                 dst_attrs.get("Driver")))
        require_lasting(dst_name, dst_attrs or dict(Driver=p["destination"]["driver"],
                                                    Options=p["destination"]["driver_opts"]), "the relocated data")
        stale = []
        for api, name, attrs in ((self.src_api, src_name, src_attrs), (self.dst_api, dst_name, dst_attrs)):
            # Under the lock of both volumes: a helper found now was left by a run that was killed.
            if attrs:
                stale.extend(va.remove_stale_helpers(api, name, self.dm.check_mode))
        users = [u for u in containers_using(self.src_api, src_name) if u["id"] not in stale] if src_attrs else []
        if src_attrs and p["mode"] == "move" and users:
            raise DockerError("cannot move volume '%s': it is used by %s, which keep it from being removed; remove "
                              "those containers first, or use mode: copy" % (src_name, container_names(users)))
        same_engine = self.engines[0] == self.engines[1]
        dest_users = [u for u in containers_using(self.dst_api, dst_name) if u["id"] not in stale
                      and not (same_engine and u["id"] in set(x["id"] for x in users))] if dst_attrs else []
        source = self.side(self.src_api, self.src_host, src_attrs) if src_attrs else None
        dest = self.side(self.dst_api, self.dst_host, dst_attrs) if dst_attrs else None
        staging = dest.state() if dest else None
        src_entries = dst_entries = None
        in_sync = ours = earlier = False
        records = [sync_record.load(path) for path in self.record_paths]
        stats = [{}, {}]
        if dest is not None:
            dst_entries = self.read_manifest(dest, records[1], stats[1])
            if source is not None:
                src_entries = self.read_manifest(source, records[0], stats[0])
                in_sync = self.same(src_entries, dst_entries)
                ours = staging is not None and staging[1] == manifest.digest(
                    manifest.at_level(src_entries, self.compare))
                earlier = sync_record.earlier_copy(records[1], self.source_key, dst_entries, self.compare)
        return dict(source_attrs=src_attrs, dest_attrs=dst_attrs, users=users, dest_users=dest_users,
                    source=source, dest=dest, staging=staging, source_entries=src_entries, dest_entries=dst_entries,
                    in_sync=in_sync, ours=ours, earlier_copy=earlier, records=records, stats=stats)

    def read_manifest(self, side, record, stats):
        """A side's manifest, reusing the digests of files unchanged since the last run: on this host, and through
        the Engine API, where the tree is listed and hashed on the engine's host (the digests then serve a re-sync
        too). Its containers still run: a file they remove meanwhile is left out (what is copied is read again
        later). stats gets the stat keys of the files with a digest, for the records."""
        if side.how == "local":
            return side.manifest_known(self.checksum, sync_record.known(record), stats, vanished_ok=True)
        side.known = sync_record.known(record)
        entries = side.manifest(self.checksum, there=True)
        stats.update((path, got[:4]) for path, got in side.known.items())
        return entries

    def same(self, a, b):
        return manifest.canonical(manifest.at_level(a, self.compare)) == \
            manifest.canonical(manifest.at_level(b, self.compare))

    def refuse(self, state, reason):
        src_name, dst_name = self.names
        if state["source_attrs"] is None:
            raise DockerError("source volume '%s' does not exist on %s; check the name and docker_host"
                              % (src_name, self.src_host))
        if state["staging"] is not None and state["staging"][0] != "partial":
            raise DockerError("destination volume '%s' on %s: %s, not of volume '%s' as this run would write it "
                              "(verify: %s); nothing was copied. Finish that run with its own options, or set "
                              "force: true to replace it"
                              % (dst_name, self.dst_host, reason, src_name, self.params["verify"]))
        raise DockerError("destination volume '%s' on %s holds other data (%s); nothing was copied. Give another "
                          "destination, or set force: true to replace that data"
                          % (dst_name, self.dst_host, "; ".join(manifest.differences(
                              manifest.at_level(state["source_entries"], self.compare),
                              manifest.at_level(state["dest_entries"], self.compare), 3))))

    def plan_actions(self, result, action, state):
        src_name, dst_name = self.names
        if state["dest_attrs"] is None:
            self.act("created volume '%s' on %s" % (dst_name, self.dst_host))
            result["created"] = True
        if action in ("copy", "resume"):
            self.act("%s volume '%s' on %s to '%s' on %s" % (
                "copied" if action == "copy" else "finished copying", src_name, self.src_host, dst_name,
                self.dst_host))
        if self.params["mode"] == "move" and state["source_attrs"] is not None:
            self.act("removed volume '%s' on %s" % (src_name, self.src_host))
            result["source_removed"] = True

    @staticmethod
    def summarize(result, entries):
        result["digest"] = manifest.digest(entries) if entries is not None else None
        result.update(manifest.summary(entries) if entries is not None else dict(bytes=0, files=0))

    def copy(self, result, state, action):
        p = self.params
        src_name, dst_name = self.names
        source, dest = state["source"], state["dest"]
        if state["dest_attrs"] is None:
            dest = self.side(self.dst_api, self.dst_host, self.create_destination(dst_name, state["source_attrs"]))
        if p["method"] == "local" and not (source.how == dest.how == "local"):
            raise DockerError("method local needs both volumes' mountpoints usable here; use method auto or api")
        if dest.how == "local" and source.how != "local":
            dest = va.api_side(self.dst_api, self.dst_host, dst_name, p["helper_image"])
        result["method"] = "local" if dest.how == "local" else "api"
        how = "stop" if p["stop_containers"] else "none"
        subject = "the relocation of volume '%s' to '%s'" % (src_name, dst_name)
        # On this host every new copy is a sync (a first pass into an empty staged tree, or seeded by an
        # earlier copy); through the Engine API a precopy is, and so is the copy onto an earlier one.
        seed = not (state["dest_entries"] is None or manifest.is_empty(state["dest_entries"]))
        source, incremental = self.sync_sides(source, dest, action, seed)
        clock = {}
        try:
            with contextlib.ExitStack() as still:
                # The destination's data is replaced: its containers must not see it change under them.
                stopped = still.enter_context(containers.containers_stopped(
                    self.dst_api, self.engines[1], dst_name, how, subject, state["dest_users"]))
                if incremental:
                    copied = self.sync(result, state, source, dest, still, how, subject, stopped, clock, seed)
                else:
                    stopped = still.enter_context(containers.containers_stopped(
                        self.src_api, self.engines[0], src_name, how, subject, state["users"],
                        keep_stopped=not p["restart_containers"])) + stopped
                    result["stopped_containers"] = stopped
                    clock["start"] = clock["stop"] = time.monotonic()
                    copied = transfer.staged_copy(source, dest, p["verify"],
                                                  state["staging"] if action == "resume" else None,
                                                  checkpoint=self.check_destination)
                    result["passes"] = [dict(bytes_copied=copied["bytes_copied"], final=True)]
                    self.check_move(dest, copied)
                seconds = time.monotonic() - clock["start"]
            result["downtime_seconds"] = round(time.monotonic() - clock["stop"], 3)
        except DockerError as exc:
            detail = str(exc).rstrip(".")
            for hint in (va.COPY_HINT, va.WRITE_HINT):  # said once, below
                detail = detail.replace("; " + hint, "")
            raise DockerError("relocation of volume '%s' to '%s' on %s stopped: %s. The source is unchanged; "
                              "the destination holds no complete copy and the next run finishes the job"
                              % (src_name, dst_name, self.dst_host, detail)) from None
        self.summarize(result, copied["entries"])
        result.update(bytes_copied=copied["bytes_copied"], seconds=round(seconds, 3),
                      throughput=transfer.throughput(result["bytes"], seconds))
        if incremental and dest.how == "local" and p["mode"] == "copy":
            stats = {}
            # the destination's containers run again: what they remove meanwhile is left out of the record
            final = dest.manifest_known(self.checksum, copied["dest_known"], stats, vanished_ok=True)
            self.remember(copied["entries"], copied["stats"], final, stats)
        elif p["mode"] == "copy":
            # through the Engine API: the stat keys and digests of both sides when a sync listed them (the
            # destination's files below its top entries keep the keys they had in the staged tree); the
            # destination's record says that it is a copy of this source, so that the next run updates it (an
            # incremental re-sync) without force
            self.remember(copied["entries"], copied.get("stats"), copied["entries"], copied.get("dest_keys") or {})

    def sync_sides(self, source, dest, action, seed):
        """(source, whether the copy is a sync): on this host every new copy is; through the Engine API a
        precopy is, and so is a copy onto an earlier one (seed; api_sync.py: the source read through the Engine
        API too); a stop_copy into an empty destination streams the tree."""
        p = self.params
        if source.how == dest.how == "local" and action == "copy":
            return source, True
        if p["strategy"] == "precopy" and action != "copy":
            self.dm.warn("strategy precopy needs a new copy; volume '%s' was copied with the containers stopped "
                         "(stop_copy)" % self.names[0])
        if action != "copy" or (p["strategy"] != "precopy" and not seed):
            return source, False
        if source.how == "local":
            source = va.api_side(self.src_api, self.src_host, self.names[0], p["helper_image"])
        return source, True

    def sync(self, result, state, source, dest, still, how, subject, stopped, clock, seed):  # noqa: PLR0913
        """The incremental copy: passes while the source's containers run (precopy), then they are stopped for
        the last pass, the verification and the move into place. seed: the destination holds data (an earlier
        copy) that the first pass starts from."""
        p = self.params
        src_name, dst_name = self.names
        known = [dict((e["path"], tuple(st) + (e["sha256"],)) for e in (entries or ()) if "sha256" in e
                      for st in [stats.get(e["path"])] if st is not None)
                 for entries, stats in ((state["source_entries"], state["stats"][0]),
                                        (state["dest_entries"], state["stats"][1]))]
        with os_errors("copy of volume '%s' to '%s'" % (src_name, dst_name), va.COPY_HINT):
            sync = dest.open_sync(source, self.checksum, seed=seed, src_known=known[0], seed_known=known[1])
            clock["start"] = time.monotonic()
            passes = []
            if p["strategy"] == "precopy":
                passes = transfer.precopy_passes(sync, p["precopy_max_passes"], p["precopy_threshold_bytes"])
        clock["stop"] = time.monotonic()
        stopped = still.enter_context(containers.containers_stopped(
            self.src_api, self.engines[0], src_name, how, subject, state["users"],
            keep_stopped=not p["restart_containers"])) + stopped
        result["stopped_containers"] = stopped
        with os_errors("copy of volume '%s' to '%s'" % (src_name, dst_name), va.COPY_HINT):
            copied = transfer.final_pass(sync, source, dest, p["verify"], checkpoint=self.check_destination)
        self.check_move(dest, copied)
        result["passes"] = [dict(bytes_copied=n, final=False) for n in passes] + [
            dict(bytes_copied=copied["bytes_copied"], final=True)]
        copied["bytes_copied"] = sum(n["bytes_copied"] for n in result["passes"])
        copied["dest_known"] = dict((path, (k[0], k[1], k[2], k[-1])) for path, k in sync.staged_known.items())
        if dest.how == "api":
            copied["dest_keys"] = sync.staged_keys()
        return copied

    def check_move(self, dest, copied):
        """For a move: the destination, read again, must equal the copy."""
        if self.params["mode"] != "move":
            return
        src_name, dst_name = self.names
        final = dest.manifest(self.checksum)
        if not self.same(final, copied["entries"]):
            raise DockerError("volume '%s' differs from '%s' after the copy (%s); the source was kept"
                              % (dst_name, src_name, "; ".join(manifest.differences(
                                  manifest.at_level(copied["entries"], self.compare),
                                  manifest.at_level(final, self.compare)))))

    def side(self, api, host, attrs):
        return va.open_side(api, host, attrs, self.params["method"], self.params["helper_image"])

    def check_destination(self):
        """Called after the copy, before it is marked verified: the destination engine must still answer."""
        try:
            self.dst_api.ping()
        except Exception as exc:  # noqa: BLE001 -- any failure here means the engine is gone
            raise DockerError("the destination engine stopped answering during the copy (%s)" % exc) from None

    def create_destination(self, name, src_attrs):
        d = self.params["destination"]
        labels = dict(src_attrs.get("Labels") or {}) if self.params["copy_labels"] else {}
        labels.update((str(k), str(v)) for k, v in (d["labels"] or {}).items())
        opts = dict((str(k), str(v)) for k, v in (d["driver_opts"] or {}).items())
        check_driver(self.dst_api, d["driver"])
        with api_errors("destination volume '%s' on %s" % (name, self.dst_host)):
            self.dst_api.create_volume(name, driver=d["driver"], driver_opts=opts or None, labels=labels or None)
        return inspect_volume(self.dst_api, name)


def main():
    connection = dict(SIDE_CONNECTION_ARGS, name=dict(type="str", required=True))
    destination = dict(connection, driver=dict(type="str", default="local"),
                       driver_opts=dict(type="dict", default={}), labels=dict(type="dict", default={}))
    spec = dict(
        source=dict(type="dict", required=True, options=connection),
        destination=dict(type="dict", required=True, options=destination),
        mode=dict(type="str", default="copy", choices=["copy", "move"]),
        verify=dict(type="str", default="checksum", choices=list(manifest.LEVELS)),
        stop_containers=dict(type="bool", default=True),
        restart_containers=dict(type="bool", default=True),
        copy_labels=dict(type="bool", default=True),
        force=dict(type="bool", default=False),
        method=va.method_argument(),
        helper_image=dict(type="str", default=va.DEFAULT_HELPER_IMAGE),
        strategy=dict(type="str", default="stop_copy", choices=["stop_copy", "precopy"]),
        precopy_max_passes=dict(type="int", default=5, no_log=False),
        precopy_threshold_bytes=dict(type="int", default=64 << 20),
        **locking.LOCK_TIMEOUT_SPEC,
    )
    DockerModule(spec).run(VolumeRelocateManager)


if __name__ == "__main__":
    main()
