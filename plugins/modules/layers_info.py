#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: layers_info
short_description: Show an image's layer stack and a container's copy-on-write changes
version_added: 0.1.0
description:
  - For an image, its read-only layers (history with the instruction that created each layer,
    sizes, creation times), the diff ids of its root file system and its total size, like
    C(docker history) and C(docker inspect).
  - For a container, the changes in its writable copy-on-write layer against its image, like
    C(docker diff) (V(A) added, V(C) changed, V(D) deleted), and the size of that layer.
  - When only O(container) is given, the layers of the container's image are returned too.
extends_documentation_fragment:
  - persist.docker.docker
  - persist.docker.attributes
  - persist.docker.attributes.actiongroup_docker
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Reads only; there is no diff.
  idempotent:
    support: full
    description: Never changes anything.
options:
  image:
    description:
      - Name, V(name:tag) or id of an image.
    type: str
  container:
    description:
      - Name or id of a container, running or stopped.
    type: str
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: Show the layers of an image
  persist.docker.layers_info:
    image: nginx:latest
  register: nginx_layers

- name: Print the instruction behind each layer
  ansible.builtin.debug:
    msg: "{{ nginx_layers.image.layers | map(attribute='created_by') | list }}"

- name: What has a container written into its copy-on-write layer?
  persist.docker.layers_info:
    container: web
  register: web_layer

- name: Print its changes as docker diff does
  ansible.builtin.debug:
    msg: "{{ item.kind }} {{ item.path }}"
  loop: "{{ web_layer.container.changes }}"
"""

RETURN = r"""
image:
  description: The image (given, or the container's image).
  returned: when O(image) or O(container) is given
  type: dict
  contains:
    id:
      description: Image id.
      type: str
    tags:
      description: Repository tags pointing at the image.
      type: list
      elements: str
    size:
      description: Total size of the image in bytes.
      type: int
    diff_ids:
      description: Digests of the uncompressed layers of the root file system, bottom first.
      type: list
      elements: str
    layers:
      description: The image history, oldest first; entries with size 0 changed only metadata.
      type: list
      elements: dict
      sample:
        - id: sha256:262046904b056be3566611e6abf02ad55876055a4a90cee72659130544e0e2d6
          created: "2024-01-01T00:00:00+00:00"
          created_by: /bin/sh -c #(nop) CMD ["sh"]
          size: 0
          comment: ""
          tags: []
    author:
      description: Author recorded in the image.
      type: str
    comment:
      description: Commit message recorded in the image.
      type: str
    created:
      description: Creation time.
      type: str
    config:
      description:
        - The parts of the image configuration a commit can change
          (cmd, entrypoint, env, labels, user, workdir).
      type: dict
container:
  description: The container's writable layer.
  returned: when O(container) is given
  type: dict
  contains:
    id:
      description: Container id.
      type: str
    name:
      description: Container name.
      type: str
    image:
      description: The image name the container was created from.
      type: str
    image_id:
      description: The image id the container was created from.
      type: str
    running:
      description: Whether the container runs.
      type: bool
    graph_driver:
      description: The storage driver that holds the layers, for example V(overlay2).
      type: str
    changes:
      description: Changes against the image, sorted by path; C(kind) is V(A) (added), V(C) (changed) or V(D) (deleted).
      type: list
      elements: dict
      sample: [{path: /root, kind: C}, {path: /root/testfile, kind: A}]
    size_rw:
      description: Size in bytes of the writable layer.
      type: int
    size_root_fs:
      description: Size in bytes of all the container's layers.
      type: int
"""

from ansible_collections.persist.docker.plugins.module_utils.client import DockerModule
from ansible_collections.persist.docker.plugins.module_utils.layers import container_layer_info, image_info
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager


class LayersInfoManager(Manager):
    def run(self):
        api = self.dm.api
        result = dict(changed=False)
        image = self.dm.params["image"]
        if self.dm.params["container"]:
            result["container"] = container_layer_info(api, self.dm.params["container"])
            image = image or result["container"]["image_id"]
        result["image"] = image_info(api, image)
        return result


def main():
    spec = dict(
        image=dict(type="str"),
        container=dict(type="str"),
    )
    DockerModule(spec, required_one_of=[("image", "container")]).run(LayersInfoManager)


if __name__ == "__main__":
    main()
