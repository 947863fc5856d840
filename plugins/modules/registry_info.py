#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_info
short_description: Repositories, tags, manifest digests and sizes, and health of a registry
version_added: 0.1.0
description:
  - Reads a registry through its HTTP API v2 with C(requests), from the managed host; the Docker engine
    is not used. The catalog and the tag lists are followed page by page.
  - Fails with a clear message when the registry cannot be reached or refuses the credentials.
extends_documentation_fragment:
  - persist.docker.docker
  - persist.docker.attributes
  - persist.docker.attributes.actiongroup_docker
  - persist.docker.registry_client
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is no diff.
  idempotent:
    support: full
    description: Never changes anything.
options:
  registry_url:
    description:
      - The registry, V(host[:port]) or V(https://host[:port]), for example V(localhost:5000).
    type: str
    required: true
  repositories:
    description:
      - Repositories to describe. Default is every repository of the catalog.
    type: list
    elements: str
  tags:
    description: List the tags of each repository.
    type: bool
    default: true
  manifests:
    description: Read the manifest of each tag (digest, media type, size, layers). Implies O(tags).
    type: bool
    default: true
  page_size:
    description: Entries asked per page of the catalog and of the tag lists.
    type: int
    default: 100
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: Everything in the local registry
  persist.docker.registry_info:
    registry_url: localhost:5000
  register: registry

- name: Tags and digests of one repository, with credentials and a private CA
  persist.docker.registry_info:
    registry_url: https://registry.example.com:5000
    repositories: [team/app]
    username: ci
    password: "{{ vault_registry_password }}"
    registry_ca_path: /etc/registry/ca.crt
"""

RETURN = r"""
health:
  description: The answer to C(GET /v2/).
  returned: always
  type: dict
  contains:
    ok:
      description: Whether C(/v2/) answered 200.
      type: bool
    status:
      description: HTTP status of C(/v2/).
      type: int
    api_version:
      description: The C(Docker-Distribution-Api-Version) header.
      type: str
      sample: registry/2.0
    url:
      description: The URL that was asked.
      type: str
catalog:
  description: Names of all repositories (only when O(repositories) is not given).
  returned: success
  type: list
  elements: str
repositories:
  description: One entry per repository.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Repository name.
      type: str
    tags:
      description: Tags with their manifest (digest, media_type, size, config_digest, layers) when O(manifests=true).
      type: list
      elements: dict
      sample: [{tag: "1", digest: "sha256:85bd...", size: 1002519, media_type:
                "application/vnd.docker.distribution.manifest.v2+json", config_digest: "sha256:2620...", layers: 1}]
    size:
      description: Bytes of the distinct blobs the tags reference.
      type: int
"""

from ansible_collections.persist.docker.plugins.module_utils.client import DockerModule
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager
from ansible_collections.persist.docker.plugins.module_utils.registry_api import (
    REGISTRY_CLIENT_SPEC,
    RegistryClient,
    tls_warnings,
)


class RegistryInfoManager(Manager):
    def run(self):
        p = self.params
        if p["page_size"] < 1:
            raise DockerError("page_size must be at least 1, got %s" % p["page_size"])
        for warning in tls_warnings(p):
            self.dm.warn(warning)
        client = RegistryClient(p["registry_url"], username=p["username"], password=p["password"],
                                ca_path=p["registry_ca_path"], validate_certs=p["registry_validate_certs"],
                                scheme=p["registry_scheme"])
        health = client.ping()
        if health["status"] is None:
            raise DockerError(health["error"])
        result = dict(changed=False, health={k: health[k] for k in ("ok", "status", "api_version", "url")})
        names = p["repositories"]
        if names is None:
            names = client.catalog(p["page_size"])
            result["catalog"] = names
        repositories = []
        for name in names:
            entry = dict(name=name)
            if p["tags"] or p["manifests"]:
                entry["tags"] = [self.describe(client, name, tag) for tag in client.tags(name, p["page_size"])]
                if p["manifests"]:
                    entry["size"] = blob_total(entry["tags"])
            repositories.append(entry)
        result["repositories"] = repositories
        return result

    def describe(self, client, name, tag):
        if not self.params["manifests"]:
            return dict(tag=tag)
        manifest = client.manifest(name, tag)
        if manifest is None:
            return dict(tag=tag, digest=None)
        blobs = {layer["digest"]: layer["size"] for layer in manifest["layers"]}
        if manifest["config_digest"]:
            blobs[manifest["config_digest"]] = manifest.get("config_size") or 0
        return dict(tag=tag, digest=manifest["digest"], media_type=manifest["media_type"], size=manifest["size"],
                    config_digest=manifest["config_digest"], layers=len(manifest["layers"]), _blobs=blobs)


def blob_total(tags):
    """Bytes of the distinct blobs the tags reference (shared layers counted once); drops the work data."""
    seen = {}
    for tag in tags:
        seen.update(tag.pop("_blobs", None) or {})
    return sum(seen.values())


def main():
    spec = dict(
        registry_url=dict(type="str", required=True),
        repositories=dict(type="list", elements="str"),
        tags=dict(type="bool", default=True),
        manifests=dict(type="bool", default=True),
        page_size=dict(type="int", default=100),
    )
    spec.update(REGISTRY_CLIENT_SPEC)
    DockerModule(spec).run(RegistryInfoManager)


if __name__ == "__main__":
    main()
