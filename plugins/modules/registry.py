#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: registry
short_description: Deploy and maintain a private Docker registry container (distribution registry:2)
version_added: 0.1.0
description:
  - Runs a C(registry:2) container with a C(config.yml) rendered from the options, its storage
    backend, TLS, htpasswd users, pull-through cache and shared C(http_secret).
  - The files the registry reads (C(config.yml), C(htpasswd), certificate and key) are put into the
    container through the Engine API; a fingerprint of them is kept as the container label
    C(persist.docker.registry.fingerprint).
  - The container is recreated only when the rendered files, the image, the published port, the
    storage mount or the network mode differ; the result and the diff say which. A changed restart
    policy is updated in place. Stored images are never touched, and a failed recreation puts the
    previous container back.
  - Waits until C(/v2/) answers before it returns.
extends_documentation_fragment:
  - persist.docker.docker
attributes:
  check_mode:
    support: full
    description: Predicts exactly whether the container is created, recreated, updated, started or removed.
  diff_mode:
    support: full
    description: Shows the container settings and the rendered C(config.yml) before and after, secrets masked.
  idempotent:
    support: full
    description: A second run with the same options reports no change (bcrypt hashes are reused while the
      passwords match).
options:
  name:
    description: Name of the registry container.
    type: str
    default: registry
  image:
    description: The registry image. It is pulled when it is not on the engine.
    type: str
    default: registry:2
  state:
    description:
      - V(present) runs the registry; V(absent) removes the container and keeps its storage unless
        O(purge_storage=true).
    type: str
    default: present
    choices: [present, absent]
  purge_storage:
    description:
      - With O(state=absent), also delete the storage (the host directory O(storage_path) or the named
        volume). Remote object storage is never deleted.
    type: bool
    default: false
  published_port:
    description:
      - Host port the registry answers on. With O(network_mode=host) the registry listens on it directly.
    type: int
    default: 5000
  bind_address:
    description: Host address the port is published on.
    type: str
    default: 0.0.0.0
  network_mode:
    description:
      - Network mode of the container, for example V(host) (needed on engines without a bridge).
        Default is the engine's default bridge.
    type: str
  restart_policy:
    description: Restart policy of the container.
    type: str
    default: always
    choices: ['no', on-failure, always, unless-stopped]
  storage:
    description:
      - Storage backend. V(inmemory) loses everything when the container stops (tests only);
        V(filesystem) keeps the data in O(storage_path) or a named volume; the others keep it in an
        object store configured by the option of the same name.
    type: str
    default: filesystem
    choices: [inmemory, filesystem, s3, swift, azure, gcs, oss]
  storage_path:
    description:
      - With O(storage=filesystem), the host directory mounted at C(/var/lib/registry). It is created
        when missing. Mutually exclusive with O(storage_volume).
    type: path
  storage_volume:
    description:
      - With O(storage=filesystem), the named volume mounted at C(/var/lib/registry).
      - Default is V(<name>-data) when O(storage_path) is not set.
    type: str
  s3:
    description: Parameters of the V(s3) storage driver, as the registry names them. O(s3.bucket) is required.
    type: dict
    suboptions:
      accesskey: {description: Access key id., type: str}
      secretkey: {description: Secret access key., type: str}
      region: {description: Region; V(us-east-1) when not set., type: str}
      regionendpoint: {description: Endpoint of an S3-compatible server such as V(http://127.0.0.1:9000)., type: str}
      bucket: {description: Bucket name., type: str}
      encrypt: {description: Server-side encryption., type: bool}
      keyid: {description: KMS key id for encryption., type: str}
      secure: {description: Use HTTPS to reach the endpoint., type: bool}
      skipverify: {description: Do not verify the endpoint's certificate., type: bool}
      v4auth: {description: Use AWS signature version 4., type: bool}
      chunksize: {description: Multipart upload chunk size in bytes., type: int}
      rootdirectory: {description: Prefix of all keys in the bucket., type: str}
      storageclass: {description: Storage class of new objects., type: str}
  swift:
    description: Parameters of the V(swift) storage driver. O(swift.authurl), O(swift.username), O(swift.password)
      and O(swift.container) are required.
    type: dict
    suboptions:
      authurl: {description: Keystone URL., type: str}
      username: {description: User name., type: str}
      password: {description: Password., type: str}
      container: {description: Swift container., type: str}
      region: {description: Region., type: str}
      tenant: {description: Tenant name., type: str}
      tenantid: {description: Tenant id., type: str}
      domain: {description: Domain name (Keystone v3)., type: str}
      domainid: {description: Domain id (Keystone v3)., type: str}
      insecureskipverify: {description: Do not verify TLS certificates., type: bool}
      prefix: {description: Prefix of all objects., type: str}
      authversion: {description: Keystone version., type: int}
      chunksize: {description: Segment size in bytes., type: int}
  azure:
    description: Parameters of the V(azure) storage driver. O(azure.accountname), O(azure.accountkey) and
      O(azure.container) are required.
    type: dict
    suboptions:
      accountname: {description: Storage account name., type: str}
      accountkey: {description: Storage account key., type: str}
      container: {description: Blob container., type: str}
      realm: {description: Domain of the blob service such as V(core.windows.net)., type: str}
  gcs:
    description: Parameters of the V(gcs) storage driver. O(gcs.bucket) is required.
    type: dict
    suboptions:
      bucket: {description: Bucket name., type: str}
      keyfile: {description: Service account key file on the managed host; it is copied into the container., type: path}
      rootdirectory: {description: Prefix of all objects., type: str}
      chunksize: {description: Upload chunk size in bytes., type: int}
  oss:
    description: Parameters of the V(oss) (Aliyun) storage driver. O(oss.accesskeyid), O(oss.accesskeysecret),
      O(oss.region) and O(oss.bucket) are required.
    type: dict
    suboptions:
      accesskeyid: {description: Access key id., type: str}
      accesskeysecret: {description: Access key secret., type: str}
      region: {description: Region., type: str}
      bucket: {description: Bucket name., type: str}
      endpoint: {description: Endpoint., type: str}
      internal: {description: Use the internal endpoint., type: bool}
      encrypt: {description: Server-side encryption., type: bool}
      secure: {description: Use HTTPS., type: bool}
      chunksize: {description: Chunk size in bytes., type: int}
      rootdirectory: {description: Prefix of all objects., type: str}
  delete_enabled:
    description: Allow deleting manifests through the API (needed by M(persist.docker.registry_gc)).
    type: bool
    default: false
  read_only:
    description: Maintenance mode; pulls work, pushes are refused.
    type: bool
    default: false
  server_cert:
    description: TLS certificate (PEM, with its chain) on the managed host; the registry then speaks HTTPS only.
    type: path
  server_key:
    description: Key of O(server_cert) on the managed host.
    type: path
  users:
    description:
      - htpasswd users; the registry then refuses anonymous requests. Passwords are hashed with bcrypt,
        which needs the Python package C(bcrypt) on the managed host.
      - Give O(server_cert) too; Docker clients send passwords only over TLS, except to localhost.
    type: list
    elements: dict
    default: []
    suboptions:
      username:
        description: User name.
        type: str
        required: true
      password:
        description: Password.
        type: str
        required: true
  auth_realm:
    description: Realm of the htpasswd authentication.
    type: str
    default: Registry Realm
  proxy:
    description: Run as a pull-through cache of another registry. Such a registry refuses pushes.
    type: dict
    suboptions:
      remote_url:
        description: URL of the registry to cache, for example V(https://registry-1.docker.io).
        type: str
        required: true
      username:
        description: User name at the remote registry.
        type: str
      password:
        description: Password at the remote registry.
        type: str
  http_secret:
    description:
      - Secret that signs upload state. Replicas behind one address must share it.
    type: str
  extra_config:
    description:
      - Further C(config.yml) settings, merged into the rendered configuration (mappings key by key,
        other values replace). Do not put secrets here; they would show in the diff.
    type: dict
    default: {}
  wait_timeout:
    description: Seconds to wait for C(/v2/) to answer after a start.
    type: int
    default: 60
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: A registry on port 5000 that keeps its images in /srv/registry
  persist.docker.registry:
    name: registry
    storage_path: /srv/registry
    delete_enabled: true

- name: With TLS and users
  persist.docker.registry:
    name: registry
    published_port: 443
    storage_path: /srv/registry
    server_cert: /etc/registry/certs/registry.crt
    server_key: /etc/registry/certs/registry.key
    users:
      - username: ci
        password: "{{ vault_registry_ci_password }}"

- name: One of several replicas sharing an S3 bucket
  persist.docker.registry:
    name: registry
    storage: s3
    s3:
      bucket: images
      region: eu-central-1
      accesskey: "{{ aws_access_key }}"
      secretkey: "{{ aws_secret_key }}"
    http_secret: "{{ vault_registry_http_secret }}"

- name: A pull-through cache of another registry
  persist.docker.registry:
    name: mirror
    published_port: 5001
    storage_volume: mirror-cache
    proxy:
      remote_url: https://registry.example.com

- name: Remove the registry but keep the images
  persist.docker.registry:
    name: registry
    state: absent
"""

RETURN = r"""
container:
  description: The registry container after the run (empty after O(state=absent)).
  returned: success
  type: dict
  contains:
    id:
      description: Container id; V(null) in check mode before it exists.
      type: str
    name:
      description: Container name.
      type: str
    image:
      description: Image reference.
      type: str
url:
  description: URL the registry answers on, seen from the managed host.
  returned: success and O(state=present)
  type: str
  sample: http://127.0.0.1:5000
config:
  description: The rendered C(config.yml), secrets masked.
  returned: success and O(state=present)
  type: dict
reasons:
  description: Why the container was created, recreated, updated or started (for example V(config), V(image),
    V(ports), V(mounts)), and for a config change the dotted keys or files that changed.
  returned: success
  type: list
  elements: str
  sample: [config, "config: storage.delete.enabled"]
actions:
  description: What was done (or would be done in check mode).
  returned: success
  type: list
  elements: str
storage:
  description: Where the images are kept.
  returned: success
  type: dict
  sample: {backend: filesystem, path: /srv/registry}
"""

import json
import os
import shutil

from ansible_collections.persist.docker.plugins.module_utils.client import (
    DockerError,
    DockerModule,
    api_errors,
    get_or_none,
    os_errors,
)
from ansible_collections.persist.docker.plugins.module_utils.registry_api import RegistryClient, wait_until_up
from ansible_collections.persist.docker.plugins.module_utils.registry_config import (
    CERT_FILE,
    CONFIG_DIR,
    CONFIG_FILE,
    CONFIG_JSON,
    CONTAINER_PORT,
    FINGERPRINT_LABEL,
    GCS_KEY_FILE,
    HTPASSWD_FILE,
    KEY_FILE,
    STORAGE_DIR,
    STORAGE_LABEL,
    config_changes,
    describe_state,
    file_fingerprint,
    mask_secrets,
    plan,
    render_config,
    render_htpasswd,
    storage_spec,
    storage_volume_name,
    to_yaml,
    validate,
    wanted_mounts,
    wanted_ports,
)
from ansible_collections.persist.docker.plugins.module_utils.registry_container import (
    is_local,
    log_tail,
    port_in_use,
    probe_host,
    put_files,
    read_file,
)


class RegistryManager:
    def __init__(self, dm):
        self.dm = dm
        self.params = dm.params
        self.name = dm.params["name"]
        self.actions = []

    @property
    def api(self):
        return self.dm.api

    # -- reading ----------------------------------------------------------------------------------
    def inspect(self):
        existing = get_or_none("container '%s'" % self.name, self.api.inspect_container, self.name)
        labels = ((existing or {}).get("Config") or {}).get("Labels") or {}
        if existing and FINGERPRINT_LABEL not in labels and existing.get("Image") != self.image_id():
            raise DockerError("container '%s' exists and is not a registry (image %s, no label %s); it was left "
                              "alone: choose another name, or remove that container yourself"
                              % (self.name, (existing.get("Config") or {}).get("Image"), FINGERPRINT_LABEL))
        return existing

    def image_id(self):
        image = get_or_none("image '%s'" % self.params["image"], self.api.inspect_image, self.params["image"])
        return image["Id"] if image else None

    def read_host_file(self, option):
        path = self.params.get(option) if "." not in option else (self.params.get("gcs") or {}).get("keyfile")
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise DockerError("registry '%s': cannot read %s %s (%s)"
                              % (self.name, option, path, exc.strerror)) from None

    def check_storage_path(self):
        path = self.params.get("storage_path")
        if path and is_local(self.dm.host) and os.path.exists(path) and not os.path.isdir(path):
            raise DockerError("registry '%s': storage_path %s exists and is not a directory; give a directory "
                              "(it is created when missing)" % (self.name, path))

    def wanted_files(self, existing):
        """{path in the container: bytes}, and the users whose password hash is new."""
        config = render_config(self.params)
        files = {CONFIG_FILE: to_yaml(config).encode("utf-8"),
                 CONFIG_JSON: json.dumps(config, sort_keys=True).encode("utf-8")}
        changed_users = []
        if self.params["users"]:
            old = read_file(self.api, existing["Id"], HTPASSWD_FILE) if existing else None
            text, changed_users = render_htpasswd(self.params["users"], old.decode("utf-8", "replace") if old else None)
            files[HTPASSWD_FILE] = text.encode("utf-8")
        if self.params.get("server_cert"):
            files[CERT_FILE] = self.read_host_file("server_cert")
            files[KEY_FILE] = self.read_host_file("server_key")
        if self.params["storage"] == "gcs" and (self.params.get("gcs") or {}).get("keyfile"):
            files[GCS_KEY_FILE] = self.read_host_file("gcs.keyfile")
        return config, files, changed_users

    def storage_info(self):
        backend = self.params["storage"]
        info = {"backend": backend}
        if backend == "filesystem":
            if self.params.get("storage_path"):
                info["path"] = self.params["storage_path"]
            else:
                info["volume"] = storage_volume_name(self.params)
        return info

    def url(self):
        scheme = "https" if self.params.get("server_cert") else "http"
        host = probe_host(self.dm.host, self.params["bind_address"])
        return "%s://%s:%d" % (scheme, host, self.params["published_port"])

    # -- the run ----------------------------------------------------------------------------------
    def run(self):
        p = self.params
        validate(p)
        self.check_storage_path()
        existing = self.inspect()
        current = describe_state(existing)
        if p["state"] == "absent":
            return self.absent(existing)

        config, files, changed_users = self.wanted_files(existing)
        wanted = dict(fingerprint=file_fingerprint(files), image_id=self.image_id(), ports=wanted_ports(p),
                      mounts=wanted_mounts(p), network_mode=p.get("network_mode") or "default",
                      restart_policy=p["restart_policy"], running=True)
        action, reasons = plan(current, wanted, "present")
        old_files = self.old_files(existing, files) if existing and "config" in reasons else {}
        if "config" in reasons:
            reasons.extend(self.config_reasons(existing, old_files, files, changed_users))
        if action in ("create", "recreate"):
            self.preflight(current, wanted)

        if action == "create":
            self.create(files, wanted)
        elif action == "recreate":
            self.recreate(existing, files, wanted, reasons)
        elif action == "update":
            self.actions.append("updated restart policy of %s to %s" % (self.name, p["restart_policy"]))
            if not self.dm.check_mode:
                with api_errors("container '%s'" % self.name):
                    self.api.update_container(existing["Id"], restart_policy={"Name": p["restart_policy"]})
            if not current["running"]:
                self.start(existing["Id"])
        elif action == "start":
            self.start(existing["Id"])

        after = self.inspect() if not self.dm.check_mode else None
        if action == "none" and not self.dm.check_mode:
            self.wait(existing["Id"])
        container = after or existing
        result = dict(
            changed=bool(self.actions),
            container=dict(id=container["Id"] if container and (action != "create" or after) else None,
                           name=self.name, image=p["image"]),
            url=self.url(),
            config=mask_secrets(config),
            reasons=reasons,
            actions=self.actions,
            storage=self.storage_info(),
        )
        if self.dm.diff_mode:
            old_config = _load_json(old_files.get(CONFIG_JSON) if old_files else
                                    (read_file(self.api, existing["Id"], CONFIG_JSON) if existing else None))
            result["diff"] = dict(before=self.describe_text(current, old_config),
                                  after=self.describe_text(wanted if action != "none" else current, config))
        return result

    def old_files(self, existing, files):
        names = set(files) | {CONFIG_JSON, HTPASSWD_FILE, CERT_FILE, KEY_FILE, GCS_KEY_FILE}
        old = {}
        for path in names:
            data = read_file(self.api, existing["Id"], path)
            if data is not None:
                old[path] = data
        return old

    def config_reasons(self, existing, old_files, files, changed_users):
        labels = (existing.get("Config") or {}).get("Labels") or {}
        if FINGERPRINT_LABEL not in labels:
            return ["config: the container was not deployed by this module"]
        reasons = []
        old_config = _load_json(old_files.get(CONFIG_JSON))
        new_config = _load_json(files[CONFIG_JSON])
        for key in config_changes(old_config, new_config):
            reasons.append("config: %s" % key)
        for path in sorted(set(old_files) | set(files)):
            if path not in (CONFIG_FILE, CONFIG_JSON) and old_files.get(path) != files.get(path):
                if path == HTPASSWD_FILE and changed_users:
                    reasons.append("users: %s" % ", ".join(changed_users))
                elif path != HTPASSWD_FILE:
                    reasons.append("file: %s" % path)
        return reasons

    def preflight(self, current, wanted):
        """Checks that a real run would otherwise only find after the old container is gone."""
        p = self.params
        if not is_local(self.dm.host):
            return
        if current is not None and current["running"]:
            if wanted["ports"] and current["ports"] == wanted["ports"]:
                return
            if not wanted["ports"] and current["network_mode"] == "host":
                return
        if port_in_use(p["bind_address"], p["published_port"]):
            raise DockerError("registry '%s': port %s:%d is already taken on the host; choose another "
                              "published_port or free it" % (self.name, p["bind_address"], p["published_port"]))

    # -- changing ---------------------------------------------------------------------------------
    def ensure_image(self):
        if self.image_id():
            return
        self.actions.append("pulled image %s" % self.params["image"])
        if not self.dm.check_mode:
            repository, _sep, tag = self.params["image"].rpartition(":")
            if not repository or "/" in tag:
                repository, tag = self.params["image"], "latest"
            with api_errors("image '%s' (pull)" % self.params["image"]):
                self.api.pull(repository, tag=tag)

    def ensure_storage(self):
        p = self.params
        if p["storage"] != "filesystem":
            return
        if p.get("storage_path"):
            if not os.path.isdir(p["storage_path"]) and is_local(self.dm.host):
                self.actions.append("created directory %s" % p["storage_path"])
                if not self.dm.check_mode:
                    with os_errors("registry '%s': creating storage_path %s" % (self.name, p["storage_path"]),
                                   "create it yourself or choose a writable directory"):
                        os.makedirs(p["storage_path"], 0o755)
            return
        volume = storage_volume_name(p)
        if get_or_none("volume '%s'" % volume, self.api.inspect_volume, volume) is None:
            self.actions.append("created volume %s" % volume)
            if not self.dm.check_mode:
                with api_errors("volume '%s'" % volume):
                    self.api.create_volume(volume, labels={STORAGE_LABEL: self.name})

    def create(self, files, wanted):
        self.ensure_image()
        self.ensure_storage()
        self.actions.append("created container %s" % self.name)
        if self.dm.check_mode:
            return None
        p = self.params
        binds = []
        for destination, source in sorted(wanted["mounts"].items()):
            binds.append("%s:%s:rw" % (source.split(":", 1)[1], destination))
        port_bindings = {CONTAINER_PORT: (p["bind_address"], p["published_port"])} if wanted["ports"] else None
        host_config = self.api.create_host_config(
            port_bindings=port_bindings, binds=binds or None,
            restart_policy={"Name": p["restart_policy"]} if p["restart_policy"] != "no" else None,
            network_mode=p.get("network_mode") or None)
        storage = wanted["mounts"].get(STORAGE_DIR) or p["storage"]
        with api_errors("container '%s'" % self.name):
            created = self.api.create_container(
                p["image"], name=self.name, command=[CONFIG_FILE], detach=True,
                ports=[CONTAINER_PORT] if wanted["ports"] else None, host_config=host_config,
                labels={FINGERPRINT_LABEL: wanted["fingerprint"], STORAGE_LABEL: storage})
        container_id = created["Id"]
        try:
            put_files(self.api, container_id, CONFIG_DIR, {os.path.basename(k): v for k, v in files.items()},
                      modes={"server.crt": 0o644})
            with api_errors("container '%s'" % self.name):
                self.api.start(container_id)
            self.wait(container_id)
        except DockerError:
            self.remove_quietly(container_id)
            raise
        return container_id

    def recreate(self, existing, files, wanted, reasons):
        main = [r for r in reasons if ":" not in r]
        self.actions.append("recreating container %s because its %s changed" % (self.name, ", ".join(main)))
        if self.dm.check_mode:
            self.create(files, wanted)
            self.actions.append("removed the previous container %s" % self.name)
            return
        old_id = existing["Id"]
        was_running = bool((existing.get("State") or {}).get("Running"))
        aside = "%s-replaced-%s" % (self.name, old_id[:12])
        with api_errors("container '%s'" % self.name):
            self.api.stop(old_id, timeout=10)
            self.api.rename(old_id, aside)
        try:
            self.create(files, wanted)
        except DockerError as exc:
            with api_errors("container '%s' (putting the previous one back)" % self.name):
                self.api.rename(old_id, self.name)
                if was_running:
                    self.api.start(old_id)
            raise DockerError("%s; the previous container was put back unchanged" % exc) from None
        self.actions.append("removed the previous container %s" % self.name)
        with api_errors("container '%s'" % aside):
            self.api.remove_container(old_id, v=True, force=True)

    def start(self, container_id):
        self.actions.append("started container %s" % self.name)
        if not self.dm.check_mode:
            with api_errors("container '%s'" % self.name):
                self.api.start(container_id)
            self.wait(container_id)

    def wait(self, container_id):
        def alive():
            state = get_or_none("container '%s'" % self.name, self.api.inspect_container, container_id) or {}
            status = state.get("State") or {}
            if not status.get("Running") or status.get("Restarting"):
                raise DockerError("registry '%s' stopped right after its start (exit code %s): %s"
                                  % (self.name, status.get("ExitCode"), log_tail(self.api, container_id)))

        client = RegistryClient(self.url(), validate_certs=False, timeout=5)
        wait_until_up(client, self.params["wait_timeout"], is_alive=alive)

    def remove_quietly(self, container_id):
        with api_errors("container '%s'" % self.name):
            self.api.remove_container(container_id, v=True, force=True)

    def absent(self, existing):
        p = self.params
        if existing:
            self.actions.append("removed container %s" % self.name)
            if not self.dm.check_mode:
                with api_errors("container '%s'" % self.name):
                    self.api.remove_container(existing["Id"], v=True, force=True)
        if p["purge_storage"]:
            self.purge()
        result = dict(changed=bool(self.actions), container={}, reasons=["state is absent"] if existing else [],
                      actions=self.actions, storage=self.storage_info())
        if self.dm.diff_mode:
            result["diff"] = dict(before=self.describe_text(describe_state(existing), None) if existing else "",
                                  after="")
        return result

    def purge(self):
        p = self.params
        if p["storage"] in ("s3", "swift", "azure", "gcs", "oss"):
            self.dm.warn("purge_storage does not delete remote object storage (%s); delete it there" % p["storage"])
            return
        if p["storage"] != "filesystem":
            return
        path = p.get("storage_path")
        if path:
            if len([part for part in os.path.realpath(path).split(os.sep) if part]) < 2:
                raise DockerError("registry '%s': refusing to purge storage_path %s, a top-level directory; "
                                  "delete it yourself if you mean it" % (self.name, path))
            if os.path.isdir(path):
                self.actions.append("deleted storage directory %s" % path)
                if not self.dm.check_mode:
                    shutil.rmtree(path)
            return
        volume = storage_volume_name(p)
        if get_or_none("volume '%s'" % volume, self.api.inspect_volume, volume) is not None:
            self.actions.append("deleted volume %s" % volume)
            if not self.dm.check_mode:
                with api_errors("volume '%s' (is another container using it?)" % volume):
                    self.api.remove_volume(volume)

    # -- diff -------------------------------------------------------------------------------------
    def describe_text(self, state, config):
        if not state:
            return ""
        lines = ["container: %s" % self.name,
                 "image: %s" % (state.get("image_id") or "(pulled on the real run)"),
                 "network_mode: %s" % state.get("network_mode"),
                 "ports: %s" % ", ".join("%s -> %s" % (k, v) for k, v in sorted(state["ports"].items())),
                 "mounts: %s" % ", ".join("%s -> %s" % (v, k) for k, v in sorted(state["mounts"].items())),
                 "restart_policy: %s" % state["restart_policy"],
                 "running: %s" % state["running"],
                 "files fingerprint: %s" % state.get("fingerprint")]
        if config:
            lines.append("config.yml:")
            lines.extend("  " + line for line in to_yaml(mask_secrets(config)).splitlines())
        return "\n".join(lines) + "\n"


def _load_json(data):
    """The rendered config kept beside config.yml as JSON (empty when missing or unreadable)."""
    if not data:
        return {}
    try:
        loaded = json.loads(data.decode("utf-8", "replace"))
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def main():
    spec = dict(
        name=dict(type="str", default="registry"),
        image=dict(type="str", default="registry:2"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        purge_storage=dict(type="bool", default=False),
        published_port=dict(type="int", default=5000),
        bind_address=dict(type="str", default="0.0.0.0"),
        network_mode=dict(type="str"),
        restart_policy=dict(type="str", default="always", choices=["no", "on-failure", "always", "unless-stopped"]),
        storage=dict(type="str", default="filesystem",
                     choices=["inmemory", "filesystem", "s3", "swift", "azure", "gcs", "oss"]),
        storage_path=dict(type="path"),
        storage_volume=dict(type="str"),
        delete_enabled=dict(type="bool", default=False),
        read_only=dict(type="bool", default=False),
        server_cert=dict(type="path"),
        server_key=dict(type="path", no_log=False),
        users=dict(type="list", elements="dict", default=[], options=dict(
            username=dict(type="str", required=True),
            password=dict(type="str", required=True, no_log=True),
        )),
        auth_realm=dict(type="str", default="Registry Realm"),
        proxy=dict(type="dict", options=dict(
            remote_url=dict(type="str", required=True),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
        )),
        http_secret=dict(type="str", no_log=True),
        extra_config=dict(type="dict", default={}),
        wait_timeout=dict(type="int", default=60),
    )
    spec.update(storage_spec())
    DockerModule(spec).run(RegistryManager)


if __name__ == "__main__":
    main()
