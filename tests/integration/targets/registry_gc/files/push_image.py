#!/usr/bin/env python
# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Push a small image straight through the Registry HTTP API v2, as an OCI image or an OCI image index.

    push_image.py http://127.0.0.1:PORT REPOSITORY TAG CREATED|none image|index

The image has one random layer and a config whose created time is CREATED (none: no created field);
"index" puts an OCI image index (application/vnd.oci.image.index.v1+json) that references that image
under TAG, as multi-arch builds and attestations do. Prints the digest of what TAG points at.
"""

import hashlib
import json
import os
import sys
import urllib.request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def send(method, url, data=b"", headers=None):
    request = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.headers


def put_blob(base, repository, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = send("POST", "%s/v2/%s/blobs/uploads/" % (base, repository))["Location"]
    if location.startswith("/"):
        location = base + location
    separator = "&" if "?" in location else "?"
    send("PUT", "%s%sdigest=%s" % (location, separator, digest), data, {"Content-Type": "application/octet-stream"})
    return {"digest": digest, "size": len(data)}


def put_manifest(base, repository, reference, document, media_type):
    data = json.dumps(document, sort_keys=True).encode("utf-8")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    send("PUT", "%s/v2/%s/manifests/%s" % (base, repository, reference or digest), data,
         {"Content-Type": media_type})
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def main(base, repository, tag, created, kind):
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(os.urandom(32)).hexdigest()]}}
    if created != "none":
        config["created"] = created
    config_blob = put_blob(base, repository, json.dumps(config, sort_keys=True).encode("utf-8"))
    layer_blob = put_blob(base, repository, os.urandom(2048))
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": dict(config_blob, mediaType="application/vnd.oci.image.config.v1+json"),
                "layers": [dict(layer_blob, mediaType="application/vnd.oci.image.layer.v1.tar+gzip")]}
    if kind == "image":
        print(put_manifest(base, repository, tag, manifest, OCI_MANIFEST)["digest"])
        return
    child = put_manifest(base, repository, None, manifest, OCI_MANIFEST)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [dict(child, platform={"architecture": "amd64", "os": "linux"})]}
    print(put_manifest(base, repository, tag, index, OCI_INDEX)["digest"])


if __name__ == "__main__":
    main(*sys.argv[1:6])
