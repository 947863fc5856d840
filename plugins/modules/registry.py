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
    policy is updated in place. Stored images are never touched (a container's volumes are never removed
    with it), and a failed recreation puts the previous container back.
  - An existing container of that name that was not deployed by this module (for example one started with
    C(docker run -d -p 5000:5000 --name registry registry:2)) is taken over with its storage. When neither
    O(storage_path) nor O(storage_volume) is given, the directory or volume it mounts at C(/var/lib/registry),
    also an anonymous volume, becomes the storage (RV(adopted_volume), a warning and an action say so).
  - Only a registry with TLS (O(server_cert)) and O(users) answers other hosts by default; any other one is
    published on C(127.0.0.1) unless O(allow_insecure=true). The module warns whenever the registry answers
    other hosts without TLS or users.
  - Waits until C(/v2/) answers before it returns.
  - Holds the lock of the registry (see O(lock_timeout)) while it works, so it never runs alongside
    M(persist.docker.registry_gc) on the same registry.
extends_documentation_fragment:
  - persist.docker.docker
  - persist.docker.attributes
  - persist.docker.attributes.actiongroup_docker
  - persist.docker.lock
requirements:
  - bcrypt (for O(users), whose htpasswd entries are bcrypt hashes)
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
      - A directory is deleted only when the engine runs on the managed host (a Unix socket), the module
        created it (the container records it in its label C(persist.docker.registry.created_path)), it is not
        a system directory and no other container mounts it. A volume is deleted only when the module created
        it for this registry (its label C(persist.docker.registry.storage)) and no other container uses it.
        Otherwise the module fails, names the reason and removes nothing.
    type: bool
    default: false
  published_port:
    description:
      - Host port the registry answers on. With O(network_mode=host) the registry listens on it directly.
    type: int
    default: 5000
  bind_address:
    description:
      - Host address the port is published on (with O(network_mode=host), the address the registry listens on).
      - Default is V(0.0.0.0) for a registry with TLS (O(server_cert)) and O(users), and V(127.0.0.1) for any
        other one, so that no other host can push to or delete from it.
      - A non-loopback address without TLS and users needs O(allow_insecure=true); O(users) without
        O(server_cert) are refused on any non-loopback address (the passwords would travel in clear text).
    type: str
  allow_insecure:
    description:
      - Acknowledge that a registry without TLS or without users answers other hosts, where anyone can read,
        push and (with O(delete_enabled)) delete images. Then O(bind_address) defaults to V(0.0.0.0), as in
        version 0.1.0, and the module warns about it on every run.
    type: bool
    default: false
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
      - Default, when O(storage_path) is not set either, is the storage the existing container mounts at
        C(/var/lib/registry) (adopted, also an anonymous volume), else V(<name>-data).
      - A container that keeps its images in an anonymous volume is not moved onto other storage; give that
        volume's name here, or leave both options unset.
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
- name: A registry on 127.0.0.1:5000 that keeps its images in /srv/registry
  persist.docker.registry:
    name: registry
    storage_path: /srv/registry
    delete_enabled: true

- name: Take over a registry started with docker run -d -p 5000:5000 --name registry registry:2 (its images stay)
  persist.docker.registry:
    name: registry
  register: taken_over
  # taken_over.adopted_volume names the anonymous volume that holds the images

- name: A registry without TLS that other hosts of a trusted network may reach (acknowledged)
  persist.docker.registry:
    name: lab-registry
    published_port: 5002
    bind_address: 10.0.0.5
    allow_insecure: true

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
bind_address:
  description: The host address the registry is published on (or listens on, with the host network).
  returned: success and O(state=present)
  type: str
  sample: 127.0.0.1
adopted_volume:
  description:
    - The anonymous volume of the existing container that holds the images and was adopted as the storage
      (V(null) when there is none). After O(state=absent) it is the volume that was kept.
  returned: success
  type: str
  sample: 3f1c0e5b9a0d4e2c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c
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

from ansible_collections.persist.docker.plugins.module_utils import locking
from ansible_collections.persist.docker.plugins.module_utils.client import (
    DockerModule,
    api_errors,
    get_or_none,
    is_local_engine,
)
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError, os_errors
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager
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
    REMOTE_BACKENDS,
    STORAGE_DIR,
    STORAGE_LABEL,
    config_changes,
    describe_state,
    file_fingerprint,
    mask_secrets,
    plan,
    plan_exposure,
    render_config,
    render_htpasswd,
    storage_spec,
    to_yaml,
    validate,
    wanted_ports,
)
from ansible_collections.persist.docker.plugins.module_utils.registry_container import (
    log_tail,
    port_in_use,
    probe_host,
    put_files,
    read_file,
)
from ansible_collections.persist.docker.plugins.module_utils.registry_storage import (
    CREATED_LABEL,
    created_path,
    is_below,
    plan_purge,
    plan_storage,
    storage_label,
)
from ansible_collections.persist.docker.plugins.module_utils.volumes import containers_using


class RegistryManager(Manager):
    def __init__(self, dm):
        super().__init__(dm)
        self.name = dm.params["name"]
        self.storage = None

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
        if path and is_local_engine(self.dm.host) and os.path.exists(path) and not os.path.isdir(path):
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
        mount = self.storage["mounts"].get(STORAGE_DIR) if self.storage else None
        if mount:
            kind, _sep, source = mount.partition(":")
            info["path" if kind == "bind" else "volume"] = source
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
        if p["state"] == "present":
            p["bind_address"], warnings = plan_exposure(p)
            for warning in warnings:
                self.dm.warn(warning)
        with locking.held(locking.engine_id(self.api), "registry", self.name, timeout=p["lock_timeout"]):
            return self.converge()

    def converge(self):
        p = self.params
        existing = self.inspect()
        self.storage = plan_storage(p, existing, strict=p["state"] == "present")
        for warning in self.storage["warnings"]:
            self.dm.warn(warning)
        current = describe_state(existing, keep_anonymous=p["storage"] == "filesystem")
        if p["state"] == "absent":
            return self.absent(existing)

        config, files, changed_users = self.wanted_files(existing)
        wanted = dict(fingerprint=file_fingerprint(files), image_id=self.image_id(), ports=wanted_ports(p),
                      mounts=self.storage["mounts"], network_mode=p.get("network_mode") or "default",
                      restart_policy=p["restart_policy"], running=True)
        action, reasons = self.drift(existing, files, *plan(current, wanted, "present"))
        old_files = self.old_files(existing, files) if existing and "config" in reasons else {}
        if "config" in reasons:
            reasons.extend(self.config_reasons(existing, old_files, files, changed_users))
        if action in ("create", "recreate"):
            self.preflight(current, wanted)
        if action in ("create", "recreate"):
            self.note_adoption()

        if action == "create":
            self.create(files, wanted)
        elif action == "recreate":
            self.recreate(existing, files, wanted, reasons)
        elif action == "update":
            self.update(existing, current)
        elif action == "start":
            self.start(existing["Id"])

        after = self.inspect() if not self.check_mode else None
        if action == "none" and not self.check_mode:
            self.wait(existing["Id"])
        container = after or existing
        result = dict(
            container=dict(id=container["Id"] if container and (action != "create" or after) else None,
                           name=self.name, image=p["image"]),
            url=self.url(),
            bind_address=p["bind_address"],
            config=mask_secrets(config),
            reasons=reasons,
            storage=self.storage_info(),
            adopted_volume=self.storage["anonymous"],
        )
        before = text = None
        if self.dm.diff_mode:  # the config in the old container is read for the diff only
            old_config = _load_json(old_files.get(CONFIG_JSON) if old_files else
                                    (read_file(self.api, existing["Id"], CONFIG_JSON) if existing else None))
            before = self.describe_text(current, old_config)
            text = self.describe_text(wanted if action != "none" else current, config)
        return self.finish(result, before, text)

    def drift(self, existing, files, action, reasons):
        """A recreation when config.yml in the container is not the one deployed (fingerprint and all else equal).

        A registry_gc killed in read-only mode leaves its read-only config.yml behind; the fingerprint label
        still matches, so only reading the file back shows it.
        """
        if action not in ("none", "start", "update"):
            return action, reasons
        deployed = read_file(self.api, existing["Id"], CONFIG_FILE)
        if deployed is None or deployed == files[CONFIG_FILE]:
            return action, reasons
        return "recreate", ["config", "config: config.yml in the container is not the deployed one (a registry_gc "
                                      "interrupted in read-only mode leaves its own behind)"]

    def update(self, existing, current):
        policy = self.params["restart_policy"]
        self.act("updated restart policy of %s to %s" % (self.name, policy))
        if not self.check_mode:
            with api_errors("container '%s'" % self.name):
                self.api.update_container(existing["Id"], restart_policy={"Name": policy})
        if not current["running"]:
            self.start(existing["Id"])

    def note_adoption(self):
        adopted = self.storage["adopted"]
        if adopted:
            kind, _sep, source = adopted.partition(":")
            self.act("adopted %s %s, the storage of the existing container, as the storage of %s"
                     % ("directory" if kind == "bind" else "volume", source, self.name))

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
        if not is_local_engine(self.dm.host):
            return
        if current is not None and current["running"]:
            # the old container frees its port before the new one starts (and gets it back on failure)
            old_ports = {binding.rsplit(":", 1)[-1] for binding in current["ports"].values()}
            if wanted["ports"] and str(p["published_port"]) in old_ports:
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
        self.act("pulled image %s" % self.params["image"])
        if not self.check_mode:
            repository, _sep, tag = self.params["image"].rpartition(":")
            if not repository or "/" in tag:
                repository, tag = self.params["image"], "latest"
            with api_errors("image '%s' (pull)" % self.params["image"]):
                self.api.pull(repository, tag=tag)

    def ensure_storage(self):
        """Create the storage directory or volume when missing; True when this run created a directory."""
        mount = self.storage["mounts"].get(STORAGE_DIR)
        if not mount:
            return False
        kind, _sep, source = mount.partition(":")
        if kind == "bind":
            if os.path.isdir(source) or not is_local_engine(self.dm.host):
                return False
            self.act("created directory %s" % source)
            if not self.check_mode:
                with os_errors("registry '%s': creating storage_path %s" % (self.name, source),
                               "create it yourself or choose another storage_path"):
                    os.makedirs(source, 0o755)
            return True
        if get_or_none("volume '%s'" % source, self.api.inspect_volume, source) is None:
            self.act("created volume %s" % source)
            if not self.check_mode:
                with api_errors("volume '%s'" % source):
                    self.api.create_volume(source, labels={STORAGE_LABEL: self.name})
        return False

    def create(self, files, wanted, previous=None):
        self.ensure_image()
        created_dir = self.ensure_storage()
        self.act("created container %s" % self.name)
        if self.check_mode:
            return None
        p = self.params
        binds = []
        for destination, source in sorted(wanted["mounts"].items()):
            binds.append("%s:%s:rw" % (source.split(":", 1)[1], destination))
        port_bindings = {CONTAINER_PORT: (p["bind_address"], p["published_port"])} if wanted["ports"] else None
        host_config = self.api.create_host_config(
            port_bindings=port_bindings, binds=binds or None,
            # storage outside the host: no anonymous volume for the image's VOLUME, left behind at every recreation
            tmpfs={STORAGE_DIR: ""} if not wanted["mounts"] else None,
            restart_policy={"Name": p["restart_policy"]} if p["restart_policy"] != "no" else None,
            network_mode=p.get("network_mode") or None)
        labels = {FINGERPRINT_LABEL: wanted["fingerprint"],
                  STORAGE_LABEL: storage_label(wanted["mounts"], p["storage"])}
        created_dir = created_path(p, previous, created_dir)
        if created_dir:
            labels[CREATED_LABEL] = created_dir
        with api_errors("container '%s'" % self.name):
            created = self.api.create_container(
                p["image"], name=self.name, command=[CONFIG_FILE], detach=True,
                ports=[CONTAINER_PORT] if wanted["ports"] else None, host_config=host_config, labels=labels)
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
        self.act("recreating container %s because its %s changed" % (self.name, ", ".join(main)))
        if self.check_mode:
            self.create(files, wanted, existing)
            self.act("removed the previous container %s" % self.name)
            return
        old_id = existing["Id"]
        was_running = bool((existing.get("State") or {}).get("Running"))
        aside = "%s-replaced-%s" % (self.name, old_id[:12])
        with api_errors("container '%s'" % self.name):
            self.api.stop(old_id, timeout=10)
            self.api.rename(old_id, aside)
        try:
            self.create(files, wanted, existing)
        except DockerError as exc:
            with api_errors("container '%s' (putting the previous one back)" % self.name):
                self.api.rename(old_id, self.name)
                if was_running:
                    self.api.start(old_id)
            raise DockerError("%s; the previous container was put back unchanged" % exc) from None
        self.act("removed the previous container %s" % self.name)
        with api_errors("container '%s'" % aside):
            # never v=True: the previous container's volumes may hold the images
            self.api.remove_container(old_id, force=True)

    def start(self, container_id):
        self.act("started container %s" % self.name)
        if not self.check_mode:
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
            self.api.remove_container(container_id, force=True)

    def absent(self, existing):
        p = self.params
        purge = self.plan_purge(existing) if p["purge_storage"] else None
        if existing:
            self.act("removed container %s" % self.name)
            if not self.check_mode:
                with api_errors("container '%s'" % self.name):
                    self.api.remove_container(existing["Id"], force=True)
        if purge:
            self.purge(purge)
        result = dict(container={}, reasons=["state is absent"] if existing else [], storage=self.storage_info())
        if self.storage["anonymous"] and not purge:
            result["adopted_volume"] = self.storage["anonymous"]
            self.dm.warn("registry '%s': its images stay in the anonymous volume %s; keep it or delete it with "
                         "docker volume rm" % (self.name, self.storage["anonymous"]))
        return self.finish(result, self.describe_text(describe_state(existing), None) if existing else "", "")

    def plan_purge(self, existing):
        """(action, kind, source) purge_storage would carry out, or None; DockerError when it must not."""
        p = self.params
        if p["storage"] in REMOTE_BACKENDS:
            self.dm.warn("purge_storage does not delete remote object storage (%s); delete it there" % p["storage"])
            return None
        mount = self.storage["mounts"].get(STORAGE_DIR)
        if not mount:
            return None
        kind, _sep, source = mount.partition(":")
        labels = ((existing or {}).get("Config") or {}).get("Labels") or {}
        own_id = (existing or {}).get("Id")
        local = is_local_engine(self.dm.host)
        if kind == "bind":
            if local and not os.path.lexists(source):
                return None
            users = self.bind_users(source, own_id)
            action = plan_purge(self.name, mount, local=local, docker_host=self.dm.host,
                                created=labels.get(CREATED_LABEL),
                                resolved=os.path.realpath(source) if local else None, users=users)
        else:
            volume = get_or_none("volume '%s'" % source, self.api.inspect_volume, source)
            if volume is None:
                return None
            users = [u["name"] for u in containers_using(self.api, source) if u["id"] != own_id]
            action = plan_purge(self.name, mount, local=local, docker_host=self.dm.host, created=None,
                                volume_labels=volume.get("Labels") or {}, users=users)
        return action, kind, source

    def bind_users(self, path, own_id):
        """Names of the other containers that mount path or a directory below it."""
        with api_errors("container list"):
            found = self.api.containers(all=True)
        names = []
        for container in found:
            if container["Id"] == own_id:
                continue
            for mount in container.get("Mounts") or []:
                source = (mount.get("Source") or "").rstrip("/")
                if mount.get("Type") == "bind" and source and is_below(source, path):
                    names.append((container.get("Names") or ["/" + container["Id"][:12]])[0].lstrip("/"))
                    break
        return sorted(names)

    def purge(self, planned):
        action, kind, source = planned
        self.act(action)
        if self.check_mode:
            return
        if kind == "bind":
            with os_errors("registry '%s': deleting storage_path %s" % (self.name, source),
                           "the container is removed; delete the rest of the directory yourself"):
                shutil.rmtree(source)
        else:
            with api_errors("volume '%s' (is another container using it?)" % source):
                self.api.remove_volume(source)

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
        bind_address=dict(type="str"),
        allow_insecure=dict(type="bool", default=False),
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
    spec.update(locking.LOCK_TIMEOUT_SPEC)
    DockerModule(spec).run(RegistryManager)


if __name__ == "__main__":
    main()
