#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_image
short_description: Push an image to a registry, or pull one from it, idempotently by manifest digest
version_added: 0.1.0
description:
  - With O(state=pushed), tags the local image O(source) as O(name) and pushes it through the Docker
    engine, unless the registry already holds that image under the tag. The comparison uses the
    registry's manifest (its config digest is the local image id), so an up-to-date image is neither
    pushed nor uploaded again.
  - With O(state=pulled), pulls O(name) unless the local image already is the registry's manifest.
  - The registry is asked through its HTTP API v2 from the managed host; the push and the pull are done
    by the Docker engine, which must trust the registry too (C(/etc/docker/certs.d/<host:port>/ca.crt)
    for a private CA; plain HTTP is allowed for loopback registries).
extends_documentation_fragment:
  - persist.docker.docker
  - persist.docker.attributes
  - persist.docker.attributes.actiongroup_docker
  - persist.docker.registry_client
attributes:
  check_mode:
    support: full
    description: Predicts exactly whether the image would be tagged, pushed or pulled.
  diff_mode:
    support: full
    description: Shows the manifest digest in the registry and the local image id, before and after.
  idempotent:
    support: full
    description: A second run reports no change and transfers nothing.
options:
  name:
    description:
      - The image in the registry, V(host[:port]/repository[:tag]), for example V(localhost:5000/app:1.0).
    type: str
    required: true
  tag:
    description: Tag used when O(name) has none.
    type: str
    default: latest
  source:
    description:
      - With O(state=pushed), the local image to push (name, V(name:tag) or id). It is tagged as O(name)
        first. Default is O(name) itself.
    type: str
  state:
    description: V(pushed) puts the local image into the registry; V(pulled) fetches it from there.
    type: str
    default: pushed
    choices: [pushed, pulled]
  force:
    description: Push or pull even when the image is up to date.
    type: bool
    default: false
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: Push a committed image into the private registry
  persist.docker.registry_image:
    name: localhost:5000/new_busybox_image:1
    source: new_busybox_image:latest

- name: Push with credentials to a registry with a private CA
  persist.docker.registry_image:
    name: registry.example.com:5000/team/app:2.1
    username: ci
    password: "{{ vault_registry_password }}"
    registry_ca_path: /etc/docker/certs.d/registry.example.com:5000/ca.crt

- name: Pull it on another host
  persist.docker.registry_image:
    name: registry.example.com:5000/team/app:2.1
    state: pulled
    username: ci
    password: "{{ vault_registry_password }}"
"""

RETURN = r"""
image:
  description: The local image.
  returned: success
  type: dict
  contains:
    name:
      description: V(host:port/repository:tag).
      type: str
    id:
      description: Local image id; V(null) when a pull is only predicted (check mode).
      type: str
digest:
  description: Manifest digest of the image in the registry (after the push or pull).
  returned: success
  type: str
  sample: sha256:85bdbf0df32d778d973f1f756032d5ea816bfb1bd33e8ae46678be9efb62621d
size:
  description: Bytes of the image in the registry (config and compressed layers), when known.
  returned: success
  type: int
registry:
  description: URL of the registry API that was asked.
  returned: success
  type: str
  sample: http://localhost:5000
actions:
  description: What was done (or would be done in check mode).
  returned: success
  type: list
  elements: str
"""

from ansible_collections.persist.docker.plugins.module_utils.client import DockerModule, api_errors, get_or_none
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager
from ansible_collections.persist.docker.plugins.module_utils.registry_api import (
    REGISTRY_CLIENT_SPEC,
    RegistryClient,
    image_matches,
    split_image_reference,
    stream_error,
    tls_warnings,
)


class RegistryImageManager(Manager):
    def client(self, host):
        p = self.params
        return RegistryClient(host, username=p["username"], password=p["password"], ca_path=p["registry_ca_path"],
                              validate_certs=p["registry_validate_certs"], scheme=p["registry_scheme"])

    def auth_config(self):
        p = self.params
        return {"username": p["username"], "password": p["password"]} if p["username"] else None

    def run(self):
        p = self.params
        for warning in tls_warnings(p):
            self.dm.warn(warning)
        host, repository, tag = split_image_reference(p["name"], p["tag"])
        self.host, self.repository, self.tag = host, repository, tag
        self.full = "%s/%s:%s" % (host, repository, tag)
        client = self.client(host)
        remote = client.manifest(repository, tag)
        result, before, after = self.push(remote) if p["state"] == "pushed" else self.pull(remote)
        result["registry"] = client.base_url
        if not self.check_mode and self.actions:
            now = client.manifest(repository, tag)
            if now:
                result.update(digest=now["digest"], size=now["size"])
        return self.finish(result, before, after)

    def push(self, remote):
        p = self.params
        source = p["source"] or self.full
        local = get_or_none("image '%s'" % source, self.api.inspect_image, source)
        if local is None:
            raise DockerError("image '%s' is not on the Docker engine; build, pull or commit it before pushing"
                              % source)
        target = get_or_none("image '%s'" % self.full, self.api.inspect_image, self.full)
        tagged = False
        if target is None or target["Id"] != local["Id"]:
            self.act("tagged %s as %s" % (source, self.full))
            if not self.check_mode:
                with api_errors("image '%s'" % source):
                    self.api.tag(local["Id"], "%s/%s" % (self.host, self.repository), self.tag)
                tagged = True
        up_to_date = image_matches(local, remote, self.host, self.repository)
        digest = remote["digest"] if remote and up_to_date else None
        if p["force"] or not up_to_date:
            self.act("pushed %s" % self.full)
            if not self.check_mode:
                try:
                    digest = self.transfer("push")
                except DockerError:
                    self.untag(tagged, target)
                    raise
        result = dict(image=dict(name=self.full, id=local["Id"]), digest=digest,
                      size=remote["size"] if remote and up_to_date else None)
        before = dict(registry_digest=remote["digest"] if remote else None,
                      registry_image_id=remote.get("config_digest") if remote else None)
        after = dict(registry_digest=digest or "(assigned by the push)", registry_image_id=local["Id"])
        return result, before, after

    def pull(self, remote):
        p = self.params
        if remote is None:
            raise DockerError("image %s is not in the registry %s; push it first or check the name and tag"
                              % (self.full, self.host))
        local = get_or_none("image '%s'" % self.full, self.api.inspect_image, self.full)
        image_id = local["Id"] if local else None
        if p["force"] or not image_matches(local, remote, self.host, self.repository):
            self.act("pulled %s" % self.full)
            if self.check_mode:
                image_id = remote.get("config_digest")
            else:
                self.transfer("pull")
                with api_errors("image '%s' (after the pull)" % self.full):
                    image_id = self.api.inspect_image(self.full)["Id"]
        result = dict(image=dict(name=self.full, id=image_id), digest=remote["digest"], size=remote["size"])
        return result, dict(local_image_id=local["Id"] if local else None), dict(local_image_id=image_id)

    def untag(self, tagged, previous):
        """After a failed push, put the name back where it pointed before this run."""
        if not tagged:
            return
        with api_errors("image '%s'" % self.full):
            if previous is None:
                self.api.remove_image(self.full, noprune=True)
            else:
                self.api.tag(previous["Id"], "%s/%s" % (self.host, self.repository), self.tag)

    def transfer(self, verb):
        name = "%s/%s" % (self.host, self.repository)
        subject = "%s of %s" % (verb, self.full)
        with api_errors(subject):
            if verb == "push":
                stream = self.api.push(name, tag=self.tag, stream=True, decode=True, auth_config=self.auth_config())
            else:
                stream = self.api.pull(name, tag=self.tag, stream=True, decode=True, auth_config=self.auth_config())
            error, digest = stream_error(stream)
        if error:
            hint = ("check username and password" if "unauthorized" in error or "authentication" in error
                    else "check that the engine trusts the registry (certs.d) and that the registry accepts pushes "
                    "(not read-only, not a pull-through cache)")
            raise DockerError("%s failed: %s; %s" % (subject, error, hint))
        return digest


def main():
    spec = dict(
        name=dict(type="str", required=True),
        tag=dict(type="str", default="latest"),
        source=dict(type="str"),
        state=dict(type="str", default="pushed", choices=["pushed", "pulled"]),
        force=dict(type="bool", default=False),
    )
    spec.update(REGISTRY_CLIENT_SPEC)
    DockerModule(spec).run(RegistryImageManager)


if __name__ == "__main__":
    main()
