#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_gc
short_description: Delete old tags from a registry and collect its garbage
version_added: 0.1.0
description:
  - Deletes the tags a retention rule selects (keep the newest O(keep) of the tags that match O(match))
    through the registry API (each manifest is checked again just before its delete, and one that a tag outside
    the rule points at by then stays), then runs the registry's garbage collector (C(registry garbage-collect))
    inside the registry container while the registry is in read-only maintenance mode, and puts it back
    in its normal mode afterwards. Pulls keep working while the collector runs (the registry restarts
    twice, for about a second each); pushes are refused until it is back in normal mode.
  - The registry must have been deployed by M(persist.docker.registry) with
    O(persist.docker.registry#module:delete_enabled=true) and persistent storage (not V(inmemory)).
  - Reports the bytes reclaimed, measured on the storage directory or volume when the engine is local,
    and the freed blobs.
  - Replicas that share the storage (for example one S3 bucket) must not accept pushes while the
    collector runs; put the other replicas in read-only mode first (O(persist.docker.registry#module:read_only=true))
    and run this module on one of them.
  - Newest means the C(created) date of the image config; an image index (a multi-arch image, or one with
    attestations) is as new as its newest image. Tags whose age cannot be told are kept unless
    O(unknown_age=delete). Tags that share a manifest with a kept tag are kept (a manifest is deleted only
    when all its tags go).
  - The normal configuration is rebuilt from the one M(persist.docker.registry) recorded (C(config.json) in the
    container, checked against its fingerprint label), never read back from the read-only one. A run that was
    killed while the registry was read-only is therefore undone by the next run, which first puts the registry
    back in its normal mode.
  - Holds the lock of the registry (see O(lock_timeout)), so a second run on the same registry waits for the first
    one, and M(persist.docker.registry) waits too.
  - A registry that holds no repository yet (a new storage, where the collector of registry:2 fails because its
    C(repositories) directory does not exist) has nothing to delete or collect; the module reports no change.
  - The registry (registry:2) refuses deletes in read-only mode, so the tags are deleted just before the
    registry goes read-only; the collector, which could lose blobs of concurrent pushes, runs read-only.
extends_documentation_fragment:
  - persist.docker.docker
  - persist.docker.attributes
  - persist.docker.attributes.actiongroup_docker
  - persist.docker.registry_client
  - persist.docker.lock
attributes:
  check_mode:
    support: full
    description: A dry run that lists the tags and manifests that would go and the blobs the collector
      would free (from the manifests and a dry run of the collector).
  diff_mode:
    support: full
    description: Shows the tags of each repository before and after.
  idempotent:
    support: full
    description: A second run finds nothing to delete and nothing to collect and reports no change.
options:
  name:
    description: Name of the registry container.
    type: str
    required: true
  registry_url:
    description:
      - How to reach the registry API, V(host:port) or a URL. Default is V(localhost:<port>) with the port
        the container publishes (or listens on, with the host network).
    type: str
  repositories:
    description: Repositories to apply the retention rule to. Default is every repository of the catalog.
    type: list
    elements: str
  keep:
    description:
      - Keep the newest this many matching tags of each repository and delete the other matching tags.
      - When not set, every tag that matches O(match) is deleted; when neither O(keep) nor O(match) is set,
        no tag is deleted and only the garbage collector runs.
    type: int
  match:
    description: Regular expression (Python C(re.search)); only tags that match are subject to the rule.
    type: str
  unknown_age:
    description:
      - What to do with matching tags whose age cannot be told (no C(created) date in the image config, nor in
        any image of an index).
      - V(keep) leaves them out of the rule (they are listed in RV(unknown_age_tags)); V(delete) ranks them
        below every dated tag, the lower version (V(v9) below V(v10)) going first.
    type: str
    default: keep
    choices: [keep, delete]
  delete_untagged:
    description:
      - Let the collector also delete manifests that no tag points at (C(--delete-untagged)).
      - On registry:2 this also deletes the images that only an image index references (each platform of a
        multi-arch image, attestations), which breaks those indexes; the module warns when it is set.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for the registry after each restart.
    type: int
    default: 60
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: Keep the newest five release tags of every repository and reclaim the space
  persist.docker.registry_gc:
    name: registry
    keep: 5
    match: '^v?[0-9]+\.'

- name: Keep the newest three; tags of unknown age (no created date) go first, by version
  persist.docker.registry_gc:
    name: registry
    keep: 3
    unknown_age: delete
    lock_timeout: 60

- name: Show what would go
  persist.docker.registry_gc:
    name: registry
    repositories: [team/app]
    keep: 3
  check_mode: true
  register: would_go
"""

RETURN = r"""
deleted_tags:
  description: The tags deleted (or that would be, in check mode), as V(repository:tag).
  returned: success
  type: list
  elements: str
  sample: ["team/app:1.0", "team/app:1.1"]
deleted_manifests:
  description: The manifests deleted, as V(repository@digest).
  returned: success
  type: list
  elements: str
kept_tags:
  description: The tags kept, as V(repository:tag).
  returned: success
  type: list
  elements: str
unknown_age_tags:
  description: Matching tags kept because their age is unknown (O(unknown_age=keep)), as V(repository:tag).
  returned: success
  type: list
  elements: str
  sample: ["team/app:multiarch-1"]
freed_blobs:
  description: Digests of the blobs the collector deleted (in check mode, the ones it would delete).
  returned: success
  type: list
  elements: str
bytes_reclaimed:
  description:
    - Bytes the storage shrank by, measured on the storage directory or volume; in check mode and for
      remote storage, the sum of the known sizes of RV(freed_blobs).
  returned: success
  type: int
bytes_measured:
  description: Whether RV(bytes_reclaimed) was measured on the storage (V(false) means estimated).
  returned: success
  type: bool
actions:
  description: What was done (or would be done in check mode).
  returned: success
  type: list
  elements: str
"""

import json
import os

from ansible_collections.persist.docker.plugins.module_utils import locking
from ansible_collections.persist.docker.plugins.module_utils.client import (
    DockerModule,
    api_errors,
    get_or_none,
    is_local_engine,
)
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager
from ansible_collections.persist.docker.plugins.module_utils.registry_api import (
    REGISTRY_CLIENT_SPEC,
    RegistryClient,
    tls_warnings,
    wait_until_up,
)
from ansible_collections.persist.docker.plugins.module_utils.registry_config import (
    CERT_FILE,
    CONFIG_DIR,
    CONFIG_FILE,
    CONFIG_JSON,
    FINGERPRINT_LABEL,
    GCS_KEY_FILE,
    HTPASSWD_FILE,
    KEY_FILE,
    STORAGE_LABEL,
    file_fingerprint,
    to_yaml,
)
from ansible_collections.persist.docker.plugins.module_utils.registry_container import (
    put_files,
    read_file,
    tree_size,
)
from ansible_collections.persist.docker.plugins.module_utils.registry_gc import (
    blob_sizes,
    compile_pattern,
    empty_store,
    newest_created,
    parse_gc_output,
    plan_retention,
    predict_freed_blobs,
    readonly_config,
    still_deletable,
)

BLOBS = "docker/registry/v2/blobs"


class RegistryGcManager(Manager):
    def __init__(self, dm):
        super().__init__(dm)
        self.name = dm.params["name"]

    def inspect_registry(self):
        """The registry container and the config this collection rendered for it; DockerError otherwise."""
        container = get_or_none("container '%s'" % self.name, self.api.inspect_container, self.name)
        if container is None:
            raise DockerError("registry container '%s' not found; deploy it with persist.docker.registry first"
                              % self.name)
        raw = read_file(self.api, container["Id"], CONFIG_JSON) or b"{}"
        try:
            config = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            config = None
        if not isinstance(config, dict):
            raise DockerError("registry '%s': %s in the container is not the JSON this collection writes; redeploy "
                              "it with persist.docker.registry" % (self.name, CONFIG_JSON))
        if not config:
            raise DockerError("container '%s' was not deployed by persist.docker.registry (no %s); "
                              "redeploy it with that module" % (self.name, CONFIG_JSON))
        storage = config.get("storage") or {}
        if "inmemory" in storage:
            raise DockerError("registry '%s' keeps its images in memory; the garbage collector runs as a separate "
                              "process and cannot see them" % self.name)
        if not (container.get("State") or {}).get("Running"):
            raise DockerError("registry '%s' is not running; start it first (persist.docker.registry)" % self.name)
        return container, config

    def run(self):
        p = self.params
        if p["keep"] is not None and p["keep"] < 0:
            raise DockerError("keep must be 0 or more, got %s" % p["keep"])
        pattern = compile_pattern(p["match"])
        for warning in tls_warnings(p):
            self.dm.warn(warning)
        if p["delete_untagged"]:
            self.dm.warn("delete_untagged: the collector of registry:2 also deletes the manifests that only an image "
                         "index references (the image of each platform of a multi-arch image, attestations), so "
                         "those indexes can no longer be pulled; leave it false for registries that hold indexes")
        with locking.held(locking.engine_id(self.api), "registry", self.name, timeout=p["lock_timeout"]):
            # read under the lock: a run that holds it restarts the container
            container, config = self.inspect_registry()
            return self.collect_garbage(container, config, pattern)

    def collect_garbage(self, container, config, pattern):
        storage = config.get("storage") or {}
        recorded = self.recorded_files(container, config)
        client = self.client(container, config)
        if recorded:
            self.restore(container["Id"], recorded, client, interrupted=True)

        plan = self.plan(client, pattern)
        if plan["digests"] and not (storage.get("delete") or {}).get("enabled"):
            raise DockerError("registry '%s' does not allow deletes; deploy it with delete_enabled: true"
                              % self.name)
        eligible_now = self.dry_run(container["Id"])
        predicted = predict_freed_blobs(plan["deleted_manifests"], plan["remaining_manifests"], eligible_now)
        sizes = blob_sizes(plan["deleted_manifests"] + plan["remaining_manifests"])
        for tag in plan["tags"]:
            self.act("deleted tag %s" % tag)
        if predicted or plan["digests"]:
            self.act("ran the garbage collector with %s in read-only mode" % self.name)

        result = dict(deleted_tags=plan["tags"], deleted_manifests=plan["manifest_names"], kept_tags=plan["kept"],
                      unknown_age_tags=plan["unknown"], freed_blobs=predicted,
                      bytes_reclaimed=sum(sizes.get(b, 0) for b in predicted), bytes_measured=False)
        if not self.check_mode and (predicted or plan["digests"]):
            root = self.storage_root(container)
            before = tree_size(root)[0] if root else None
            self.delete_manifests(client, plan)
            freed = self.collect(container, config, client)
            result["freed_blobs"] = freed
            if root:
                result.update(bytes_reclaimed=max(before - tree_size(root)[0], 0), bytes_measured=True)
            else:
                result["bytes_reclaimed"] = sum(sizes.get(b, 0) for b in freed)
        return self.finish(result, "\n".join(sorted(plan["kept"] + plan["tags"])) + "\n",
                           "\n".join(plan["kept"]) + "\n")

    def delete_manifests(self, client, plan):
        """Delete the planned manifests; one that a tag outside the plan now points at (a push since) stays."""
        by_repository = {}
        for repository, digest in plan["digests"]:
            by_repository.setdefault(repository, []).append(digest)
        going = set(plan["tags"])
        for repository, digests in sorted(by_repository.items()):
            current = {}
            for tag in client.tags(repository):
                manifest = client.manifest(repository, tag)
                if manifest is not None:
                    current[tag] = manifest["digest"]
            planned = {tag for tag in current if "%s:%s" % (repository, tag) in going}
            for digest in digests:
                if still_deletable(digest, planned, current):
                    client.delete_manifest(repository, digest)
                else:
                    self.dm.warn("registry '%s': kept %s@%s, a tag was pushed onto it since the plan was made"
                                 % (self.name, repository, digest))

    def recorded_files(self, container, config):
        """The files persist.docker.registry deployed, when config.yml differs from them (else None).

        config.yml is rebuilt from config.json (which the collector never changes) and checked against the
        fingerprint the registry module keeps as a container label, so a run killed in read-only mode, or one
        that ran alongside, is undone by the next run and never taken for the registry's own configuration.
        """
        container_id = container["Id"]
        label = ((container.get("Config") or {}).get("Labels") or {}).get(FINGERPRINT_LABEL)
        files = {}
        for path in (CONFIG_FILE, CONFIG_JSON, HTPASSWD_FILE, CERT_FILE, KEY_FILE, GCS_KEY_FILE):
            data = read_file(self.api, container_id, path)
            if data is not None:
                files[path] = data
        if label is None or file_fingerprint(files) == label:
            return None
        wanted = dict(files, **{CONFIG_FILE: to_yaml(config).encode("utf-8")})
        if file_fingerprint(wanted) != label:
            raise DockerError("registry '%s': its configuration files match neither what persist.docker.registry "
                              "deployed nor the read-only mode of registry_gc (someone changed them); redeploy it "
                              "with persist.docker.registry and run again" % self.name)
        return {CONFIG_FILE: wanted[CONFIG_FILE]}

    def restore(self, container_id, files, client, interrupted=False):
        if interrupted:
            self.act("restored the configuration of %s that an interrupted registry_gc left behind "
                     "(read-only mode)" % self.name)
            if self.check_mode:
                return
        put_files(self.api, container_id, CONFIG_DIR, {os.path.basename(k): v for k, v in files.items()})
        self.restart(container_id, client)

    def client(self, container, config):
        p = self.params
        url = p["registry_url"]
        if not url:
            url = "localhost:%s" % published_port(container, config)
            if (config.get("http") or {}).get("tls") and p["registry_scheme"] == "auto":
                url = "https://" + url
        return RegistryClient(url, username=p["username"], password=p["password"], ca_path=p["registry_ca_path"],
                              validate_certs=p["registry_validate_certs"], scheme=p["registry_scheme"])

    def plan(self, client, pattern):
        p = self.params
        repositories = p["repositories"] if p["repositories"] is not None else client.catalog()
        every = p["repositories"] is None
        tags_out, kept_out, shared_out, digests, deleted, remaining, names = [], [], [], [], [], [], []
        unknown_out = []
        for repository in (repositories if every else sorted(set(repositories) | set(client.catalog()))):
            manifests = {}
            tags = []
            for tag in client.tags(repository):
                manifest = client.manifest(repository, tag)
                if manifest is None:
                    continue
                manifests[manifest["digest"]] = manifest
                created = self.created(client, repository, manifest)
                tags.append(dict(tag=tag, digest=manifest["digest"], created=created))
            if repository in repositories:
                decision = plan_retention(tags, p["keep"], pattern, p["unknown_age"])
            else:
                decision = plan_retention(tags, None, None)
            unknown_out.extend("%s:%s" % (repository, t) for t in decision["unknown"])
            tags_out.extend("%s:%s" % (repository, t) for t in decision["delete"])
            kept_out.extend("%s:%s" % (repository, t) for t in decision["keep"] if t not in decision["shared"])
            shared_out.extend("%s:%s" % (repository, t) for t in decision["shared"])
            for digest, manifest in manifests.items():
                if digest in decision["digests"]:
                    deleted.append(manifest)
                    digests.append((repository, digest))
                    names.append("%s@%s" % (repository, digest))
                else:
                    remaining.append(manifest)
        return dict(tags=tags_out, kept=sorted(kept_out + shared_out), shared=shared_out, digests=digests,
                    manifest_names=names, deleted_manifests=deleted, remaining_manifests=remaining,
                    unknown=sorted(unknown_out))

    def created(self, client, repository, manifest, depth=0):
        """The image's created time; an index's is its newest child's. None when unknown."""
        if manifest.get("children") and depth < 2:
            dates = []
            for child in manifest["children"]:
                found = client.manifest(repository, child)
                dates.append(self.created(client, repository, found, depth + 1) if found else None)
            return newest_created(dates)
        if not manifest.get("config_digest"):
            return None
        config = client.blob_json(repository, manifest["config_digest"]) or {}
        created = config.get("created")
        return created if isinstance(created, str) else None

    def gc_command(self, dry_run):
        command = ["/bin/registry", "garbage-collect"]
        if dry_run:
            command.append("--dry-run")
        if self.params["delete_untagged"]:
            command.append("--delete-untagged")
        return command + [CONFIG_FILE]

    def exec_in(self, container_id, command, empty_ok=False):
        """The output of a command in the registry container; with empty_ok, "" when the collector found no
        repository at all in the storage (a registry that never held an image: nothing to collect)."""
        with api_errors("container '%s' (%s)" % (self.name, " ".join(command[:2]))):
            exec_id = self.api.exec_create(container_id, command, stdout=True, stderr=True)
            output = self.api.exec_start(exec_id).decode("utf-8", "replace")
            code = self.api.exec_inspect(exec_id).get("ExitCode")
        if code != 0 and empty_ok and empty_store(output):
            return ""
        if code != 0:
            tail = " | ".join(line for line in output.strip().splitlines()[-3:])
            raise DockerError("registry '%s': %s failed (exit code %s): %s"
                              % (self.name, " ".join(command[:2]), code, tail))
        return output

    def dry_run(self, container_id):
        return parse_gc_output(self.exec_in(container_id, self.gc_command(True), empty_ok=True))[0]

    def collect(self, container, config, client):
        """Read-only mode, the collector, normal mode again (also when the collector fails).

        The normal configuration is rebuilt from config.json, never read back from config.yml, which a
        killed run may have left in read-only mode.
        """
        container_id = container["Id"]
        put_files(self.api, container_id, CONFIG_DIR,
                  {"config.yml": to_yaml(readonly_config(config)).encode("utf-8")})
        try:
            self.restart(container_id, client)
            output = self.exec_in(container_id, self.gc_command(False))
        finally:
            self.restore(container_id, {CONFIG_FILE: to_yaml(config).encode("utf-8")}, client)
        return parse_gc_output(output)[0]

    def restart(self, container_id, client):
        with api_errors("container '%s'" % self.name):
            self.api.restart(container_id, timeout=10)
        wait_until_up(client, self.params["wait_timeout"])

    def storage_root(self, container):
        """The storage directory on this host, when the engine is local and the storage is a mount."""
        if not is_local_engine(self.dm.host):
            return None
        label = ((container.get("Config") or {}).get("Labels") or {}).get(STORAGE_LABEL) or ""
        kind, _sep, source = label.partition(":")
        if kind == "bind":
            return "%s/%s" % (source, BLOBS)
        if kind == "volume":
            volume = get_or_none("volume '%s'" % source, self.api.inspect_volume, source)
            if volume and volume.get("Mountpoint"):
                return "%s/%s" % (volume["Mountpoint"], BLOBS)
        return None


def published_port(container, config):
    """The host port of the registry: its published 5000/tcp, or the port of http.addr on the host network."""
    bindings = ((container.get("HostConfig") or {}).get("PortBindings") or {}).get("5000/tcp") or []
    for binding in bindings:
        if binding.get("HostPort"):
            return binding["HostPort"]
    addr = (config.get("http") or {}).get("addr") or ":5000"
    return addr.rsplit(":", 1)[-1]


def main():
    spec = dict(
        name=dict(type="str", required=True),
        registry_url=dict(type="str"),
        repositories=dict(type="list", elements="str"),
        keep=dict(type="int"),
        match=dict(type="str"),
        unknown_age=dict(type="str", default="keep", choices=["keep", "delete"]),
        delete_untagged=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=60),
    )
    spec.update(REGISTRY_CLIENT_SPEC)
    spec.update(locking.LOCK_TIMEOUT_SPEC)
    DockerModule(spec).run(RegistryGcManager)


if __name__ == "__main__":
    main()
