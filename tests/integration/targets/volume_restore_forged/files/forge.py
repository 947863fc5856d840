"""Write a forged backup set, as whoever can write the backup directory could: the archive, a manifest and
a checksum file that agree with each other.

    forge.py ARCHIVE OUTSIDE KIND

The archive holds ./d, a symlink to OUTSIDE (a directory of the host holding a/b/), then ./d/a/b/evil.
KIND 'listed': the manifest lists every member (d as the symlink it is) and the directories d/a and
d/a/b; 'unlisted': it leaves out all below d; 'lying': like listed, but it lists d as a directory.
"""

import gzip
import hashlib
import io
import json
import sys
import tarfile

MTIME = 1700000000


def entry(path, kind, **extra):
    return dict(extra, path=path, type=kind, mode=0o755, uid=0, gid=0, **({"mtime": MTIME} if path else {}))


def main(archive, outside, kind):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, typ, extra in (("./", tarfile.DIRTYPE, None), ("./d", tarfile.SYMTYPE, outside),
                                 ("./d/a/b/evil", tarfile.REGTYPE, b"written by a forged backup\n")):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = typ, 0o755, MTIME
            if typ == tarfile.SYMTYPE:
                info.linkname = extra
            if typ == tarfile.REGTYPE:
                info.size = len(extra)
            tar.addfile(info, io.BytesIO(extra) if typ == tarfile.REGTYPE else None)
    data = gzip.compress(out.getvalue())
    evil = b"written by a forged backup\n"
    entries = [entry("", "dir"),
               entry("d", "dir") if kind == "lying" else entry("d", "symlink", target=outside)]
    if kind != "unlisted":
        entries.extend([entry("d/a", "dir"), entry("d/a/b", "dir")])
        entries.append(entry("d/a/b/evil", "file", size=len(evil), sha256=hashlib.sha256(evil).hexdigest()))
    lines = "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n"
                    for e in sorted(entries, key=lambda e: e["path"].encode()))
    sha = hashlib.sha256(data).hexdigest()
    doc = dict(format=1, digest="sha256:" + hashlib.sha256(lines.encode()).hexdigest(), entries=entries,
               archive_sha256=sha, compression="gzip", volume="forged")
    with open(archive, "wb") as f:
        f.write(data)
    with open(archive + ".manifest.json", "w") as f:
        f.write(json.dumps(doc, separators=(",", ":"), sort_keys=True))
    with open(archive + ".sha256", "w") as f:
        f.write("%s  %s\n" % (sha, archive.rsplit("/", 1)[-1]))


if __name__ == "__main__":
    main(*sys.argv[1:])
