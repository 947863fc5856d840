#!/usr/bin/python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: container_commit
short_description: Persist a container's writable layer as an image (docker commit)
version_added: 0.1.0
description:
  - Creates an image from the copy-on-write layer of a container, like C(docker commit), with an
    author, a commit message and Dockerfile instructions applied to the image's configuration.
  - Idempotent by content. Each image it commits carries the label
    C(persist.docker.commit.fingerprint), a digest of the container, its writable layer and the
    requested metadata. A run in which neither the layer nor the metadata changed since that
    commit creates no image and reports no change. Writing into a file that was already changed is
    a change.
  - On an engine with the overlay2 driver reached through a local Unix socket, the writable layer
    is fingerprinted from its directory's metadata, without reading file contents; otherwise the
    changed files are streamed through the Engine API and hashed.
extends_documentation_fragment:
  - persist.docker.docker
  - persist.docker.attributes
  - persist.docker.attributes.actiongroup_docker
attributes:
  check_mode:
    support: full
    description: Predicts exactly whether a real run commits.
  diff_mode:
    support: full
    description: Shows the image before and after, with the changed paths (A/C/D) of the layer.
  idempotent:
    support: full
    description: A second run with an unchanged layer and the same metadata reports no change.
options:
  container:
    description:
      - Name or id of the container to commit. It may be running or stopped.
    type: str
    required: true
  repository:
    description:
      - Repository of the new image, for example V(new_nginx_image) or V(localhost:5000/app).
      - May end in V(:tag), which then wins over O(tag).
    type: str
    required: true
  tag:
    description:
      - Tag of the new image.
    type: str
    default: latest
  author:
    description:
      - Author recorded in the image, as C(docker commit --author).
    type: str
  comment:
    description:
      - Commit message recorded in the image (its C(Comment)), as C(docker commit --message).
      - Named O(comment) because Ansible reserves the option name C(message).
    type: str
  changes:
    description:
      - Dockerfile instructions applied to the image configuration, as C(docker commit --change).
      - Only C(CMD), C(ENTRYPOINT), C(ENV), C(EXPOSE), C(HEALTHCHECK), C(LABEL), C(ONBUILD),
        C(STOPSIGNAL), C(USER), C(VOLUME) and C(WORKDIR) are accepted.
    type: list
    elements: str
    default: []
  pause:
    description:
      - Pause the container while its layer is committed, as C(docker commit --pause).
    type: bool
    default: true
  force:
    description:
      - Commit even when the image is up to date with the container.
    type: bool
    default: false
author:
  - Persist Docker Maintainers (@persist)
"""

EXAMPLES = r"""
- name: Persist the changes made in a running container
  persist.docker.container_commit:
    container: web
    repository: new_nginx_image
    author: Author Name <author@example.com>
    comment: Added a test file

- name: Commit with a new command and environment, into a private registry's namespace
  persist.docker.container_commit:
    container: web
    repository: localhost:5000/debug/web
    tag: "2024-06-01"
    changes:
      - ENV DEBUG=1
      - CMD ["nginx", "-g", "daemon off;"]
    pause: false

- name: Show what would be committed
  persist.docker.container_commit:
    container: web
    repository: new_nginx_image
  check_mode: true
  diff: true
  register: would_commit
"""

RETURN = r"""
image:
  description: The image the name points at after the run (the new one when committed).
  returned: success
  type: dict
  contains:
    id:
      description: Image id, or V(null) in check mode before a first commit.
      type: str
      sample: sha256:fda147bfb46277e55d9edf090c5a4afa76bc4ca348e446ca980795ad4160fc11
    name:
      description: V(repository:tag).
      type: str
      sample: new_nginx_image:latest
image_id:
  description: Same as RV(image.id).
  returned: success
  type: str
  sample: sha256:fda147bfb46277e55d9edf090c5a4afa76bc4ca348e446ca980795ad4160fc11
name:
  description: V(repository:tag) of the image.
  returned: success
  type: str
  sample: new_nginx_image:latest
changed_paths:
  description: The container's changes against its image, as C(docker diff) lists them.
  returned: success
  type: list
  elements: dict
  sample: [{path: /root, kind: C}, {path: /root/testfile, kind: A}]
layer_size:
  description: Size in bytes of the container's writable layer.
  returned: success
  type: int
  sample: 104857600
fingerprint:
  description: Digest of the container, its writable layer and the requested metadata.
  returned: success
  type: str
reason:
  description: Why the module committed or did not.
  returned: success
  type: str
  sample: the image is up to date with the container
actions:
  description: What was done (or would be done in check mode).
  returned: success
  type: list
  elements: str
  sample: ["committed container web as new_nginx_image:latest"]
"""

from ansible_collections.persist.docker.plugins.module_utils.client import DockerModule, api_errors, get_or_none
from ansible_collections.persist.docker.plugins.module_utils.commit import (
    commit_changes,
    fingerprint,
    plan_commit,
    validate_changes,
)
from ansible_collections.persist.docker.plugins.module_utils.layers import (
    container_changes,
    inspect_container,
    writable_layer_digest,
)
from ansible_collections.persist.docker.plugins.module_utils.manager import Manager
from ansible_collections.persist.docker.plugins.module_utils.reference import split_reference


class ContainerCommitManager(Manager):
    def run(self):
        p = self.params
        repository, tag = split_reference(p["repository"], p["tag"])
        changes = validate_changes(p["changes"])
        name = "%s:%s" % (repository, tag)

        attrs = inspect_container(self.api, p["container"], size=True)
        container_name = attrs["Name"].lstrip("/")
        changed_paths = container_changes(self.api, attrs["Id"])
        layer = writable_layer_digest(self.api, self.dm.host, attrs, changed_paths)
        wanted = fingerprint(attrs["Id"], layer, p["author"], p["comment"], changes)

        existing = get_or_none("image '%s'" % name, self.api.inspect_image, name)
        do_commit, reason = plan_commit(existing, wanted, p["force"])
        before_id = existing["Id"] if existing else None
        image_id = before_id
        if do_commit:
            self.act("committed container %s as %s" % (container_name, name))
            if not self.check_mode:
                with api_errors("commit of container '%s' as %s" % (container_name, name)):
                    created = self.api.commit(attrs["Id"], repository=repository, tag=tag,
                                              message=p["comment"], author=p["author"], pause=p["pause"],
                                              changes=commit_changes(changes, wanted))
                image_id = created["Id"]
            else:
                image_id = None

        result = dict(
            image=dict(id=image_id, name=name),
            image_id=image_id,
            name=name,
            changed_paths=changed_paths,
            layer_size=attrs.get("SizeRw", 0),
            fingerprint=wanted,
            reason=reason,
        )
        return self.finish(result, *self.diff(name, existing, do_commit, changed_paths, changes))

    def diff(self, name, existing, do_commit, changed_paths, changes):
        """(before, after) of the image name."""
        before = {"image": name, "exists": existing is not None}
        if existing:
            before.update(id=existing["Id"], author=existing.get("Author", ""),
                          comment=existing.get("Comment", ""))
        if not do_commit:
            return before, dict(before)
        p = self.params
        after = {"image": name, "exists": True, "author": p["author"] or "", "comment": p["comment"] or "",
                 "changes": changes,
                 "changed_paths": ["%s %s" % (c["kind"], c["path"]) for c in changed_paths]}
        return before, after


def main():
    spec = dict(
        container=dict(type="str", required=True),
        repository=dict(type="str", required=True),
        tag=dict(type="str", default="latest"),
        author=dict(type="str"),
        comment=dict(type="str"),
        changes=dict(type="list", elements="str", default=[]),
        pause=dict(type="bool", default=True),
        force=dict(type="bool", default=False),
    )
    DockerModule(spec).run(ContainerCommitManager)


if __name__ == "__main__":
    main()
