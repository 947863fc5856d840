"""Make damaged copies of a backup archive beside it, each with a checksum file and a manifest.

bad.tar.gz   the gzip stream flipped in its middle, checksum file and manifest forged to agree
changed.tar.gz  one byte appended, checksum file and manifest of the original (sha256 mismatch)
badmanifest.tar.gz  the original archive with a manifest that is not JSON
"""

import hashlib
import json
import os
import sys

archive = sys.argv[1]
directory = os.path.dirname(archive)
with open(archive, "rb") as f:
    data = bytearray(f.read())
with open(archive + ".manifest.json") as f:
    manifest = json.load(f)


def write(name, content, doc, sha=None):
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(content)
    sha = sha or hashlib.sha256(content).hexdigest()
    with open(path + ".sha256", "w") as f:
        f.write("%s  %s\n" % (sha, name))
    with open(path + ".manifest.json", "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(dict(doc, archive_sha256=sha)))


bad = bytearray(data)
middle = len(bad) // 2
bad[middle:middle + 64] = bytes(b ^ 0xFF for b in bad[middle:middle + 64])
write("bad.tar.gz", bytes(bad), manifest)
write("changed.tar.gz", bytes(data) + b"x", manifest, sha=manifest["archive_sha256"])
write("badmanifest.tar.gz", bytes(data), "{not json")
