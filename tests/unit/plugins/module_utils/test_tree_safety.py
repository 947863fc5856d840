"""Restores, relocations and ownership changes never reach outside the volume, whatever the archive or the tree holds.

A forged backup set (archive, manifest and checksum, consistent with each
other, as whoever can write the backup directory can make them) is refused
member by member, and a sentinel directory outside the volume shows that
nothing there was created, changed or linked.
"""

import gzip
import hashlib
import io
import os
import re
import shutil
import tarfile

import pytest
from test_fdtree import snapshot

from ansible_collections.persist.docker.plugins.module_utils import (
    archive,
    manifest,
    tar_stream,
    transfer,
    tree_copy,
    volume_access,
)
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.volume_access import LocalRoot

# Backups written by version 0.1.0 (at commit c482cbf), shared with the integration target.
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "integration", "targets", "volume_restore_forged",
                        "files")
MTIME = 1700000000


@pytest.fixture
def sentinel(tmp_path):
    outside = tmp_path / "OUTSIDE"
    (outside / "a" / "b").mkdir(parents=True)
    (outside / "a" / "b" / "secret").write_bytes(b"keep")
    return outside


def forge(directory, members, compression="none", leave_out=()):
    """A backup set made by hand: the archive of members (name, tar type, extra) and a manifest that agrees.

    extra is a file's content, a link's target or a device 'major:minor'. The
    manifest lists every member except those named in leave_out, the checksum
    file and the manifest's archive_sha256 match the archive.
    """
    out = io.BytesIO()
    entries = [manifest.make_entry("", "dir", 0o755, 0, 0)]
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = kind, 0o755, MTIME
            path = manifest.tar_path(name)
            entry = None
            if kind == tarfile.REGTYPE:
                info.size = len(extra)
                tar.addfile(info, io.BytesIO(extra))
                entry = manifest.make_entry(path, "file", 0o755, 0, 0, size=len(extra), mtime=MTIME,
                                            sha256=hashlib.sha256(extra).hexdigest())
            else:
                if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                    info.devmajor, info.devminor = (int(n) for n in extra.split(":"))
                else:
                    info.linkname = extra
                tar.addfile(info)
                kinds = {tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.FIFOTYPE: "fifo",
                         tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.LNKTYPE: "file"}
                entry = manifest.make_entry(path, kinds[kind], 0o755, 0, 0, mtime=MTIME, target=extra,
                                            rdev=extra if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE) else None)
            if path not in leave_out:
                entries.append(entry)
    data = out.getvalue() if compression == "none" else gzip.compress(out.getvalue())
    path = os.path.join(str(directory), "forged.tar" + (".gz" if compression == "gzip" else ""))
    with open(path, "wb") as f:
        f.write(data)
    sha = hashlib.sha256(data).hexdigest()
    with open(path + ".manifest.json", "w") as f:
        f.write(manifest.dump(entries, archive_sha256=sha, compression=compression))
    with open(path + ".sha256", "w") as f:
        f.write("%s  forged.tar\n" % sha)
    return path


def restore(path, volume, compression):
    with open(path + ".manifest.json") as f:
        doc = manifest.load(f.read())
    return transfer.staged_copy(archive.ArchiveSource(path, compression, doc),
                                volume_access.LocalRoot(str(volume), "v"), "checksum")


class RecordingApiRoot(volume_access.ApiRoot):
    """An ApiRoot whose helper containers are replaced by a record of what they would have been given."""

    def __init__(self):
        self.name, self.subject, self.sent, self.scripts = "v", "volume 'v'", [], []
        self.api = self

    def create_helper(self, command, read_only=False, label="transfer"):
        return "helper"

    def remove_helper(self, cid):
        pass

    # the Engine API of PUT /containers/{id}/archive: it takes the body as it comes
    def _url(self, path, *args):
        return path.format(*args)

    def _exists(self, cid, path):
        return False

    def _put(self, url, data, params, **kwargs):
        if params["path"] == volume_access.HELPER_MOUNT:  # the staging directories
            return 200
        for chunk in data:
            self.sent.append(bytes(chunk))
        return 200

    def _raise_for_status(self, res):
        pass

    def run(self, script):
        self.scripts.append(script)
        return ""


OUT = "OUTSIDE"  # replaced by the sentinel directory's path

FORGED = {
    "symlink ancestor, depth 1": ([("./d", tarfile.SYMTYPE, OUT), ("./d/new", tarfile.REGTYPE, b"x")],
                                  (), r"'d/new' below 'd', which it lists as a symlink"),
    "symlink ancestor, depth 3": ([("./d", tarfile.SYMTYPE, OUT), ("./d/a/b/new", tarfile.REGTYPE, b"x")],
                                  (), r"'d/a/b/new' below 'd/a/b', which it lists as nothing"),
    "hard link through a symlink": ([("./d", tarfile.SYMTYPE, OUT), ("./h", tarfile.LNKTYPE, "./d/a/b/secret")],
                                    (), r"member './h' is a hard link to './d/a/b/secret', which the manifest does not "
                                        r"list as a file"),
    "unlisted hard link through a symlink": ([("./d", tarfile.SYMTYPE, OUT),
                                              ("./h", tarfile.LNKTYPE, "./d/a/b/secret")], ("h",),
                                             r"member './h' is not in the backup's manifest"),
    "member absent from the manifest": ([("./a", tarfile.DIRTYPE, ""), ("./a/extra", tarfile.REGTYPE, b"x")],
                                        ("a/extra",), r"member './a/extra' is not in the backup's manifest"),
    "'..' after normalisation": ([("./a", tarfile.DIRTYPE, ""), ("./a/../../escaped", tarfile.REGTYPE, b"x")],
                                 ("a/../../escaped",), r"member './a/../../escaped' cannot be restored: it leads up "
                                                       r"with '\.\.'"),
    "absolute name": ([("OUTSIDE/new", tarfile.REGTYPE, b"x")], ("OUTSIDE/new",), "its name is absolute"),
    "device node the manifest does not list": ([("./null", tarfile.CHRTYPE, "1:3")], ("null",),
                                               r"member './null' is not in the backup's manifest"),
}


def forged_members(members, outside):
    def place(value):
        return value.replace(OUT, str(outside)) if isinstance(value, str) else value
    return [(place(n), k, place(e)) for n, k, e in members]


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("case", sorted(FORGED))
def test_forged_backup_is_refused_and_nothing_outside_changes(tmp_path, sentinel, case, compression):
    members, leave_out, message = FORGED[case]
    leave_out = [p.replace(OUT, str(sentinel)) for p in leave_out]
    path = forge(tmp_path, forged_members(members, sentinel), compression, leave_out)
    volume = tmp_path / "volume"
    volume.mkdir()
    before = snapshot(sentinel)
    with pytest.raises(DockerError) as refused:
        restore(path, volume, compression)
    assert snapshot(sentinel) == before  # nothing outside was created, changed or linked
    assert re.search(message, str(refused.value))
    assert os.listdir(str(volume)) == []  # the staging directory is gone, nothing was moved in
    assert {n for n in os.listdir(str(tmp_path)) if not n.startswith("forged.tar")} == {"OUTSIDE", "volume"}


def test_forged_backup_through_the_engine_api_sends_nothing_refused(tmp_path, sentinel):
    """The helper container's tar -x gets only members that passed, encoded anew, and the staging goes."""
    members = forged_members([("./a", tarfile.DIRTYPE, ""), ("./a/f", tarfile.REGTYPE, b"fine"),
                              ("./d", tarfile.SYMTYPE, OUT), ("./d/a/b/new", tarfile.REGTYPE, b"x")], sentinel)
    path = forge(tmp_path, members, "gzip", leave_out=("d/a/b/new",))
    with open(path + ".manifest.json") as f:
        doc = manifest.load(f.read())
    dest = RecordingApiRoot()
    with pytest.raises(DockerError, match=r"volume 'v': archive member './d/a/b/new' is not in the backup's manifest"):
        transfer.copy_into(archive.ArchiveSource(path, "gzip", doc), dest, True, [0])
    with tarfile.open(fileobj=io.BytesIO(b"".join(dest.sent)), mode="r:") as sent:
        assert [m.name for m in sent] == ["./a", "./a/f", "./d"]
    assert dest.scripts[-1] == "rm -rf %s/%s" % (volume_access.HELPER_MOUNT, manifest.STAGING)  # the clean-up


def test_a_member_the_manifest_lists_otherwise_is_refused(tmp_path, sentinel):
    """The manifest says 'd' is a directory; the archive makes it a symlink."""
    path = forge(tmp_path, forged_members([("./d", tarfile.DIRTYPE, "")], sentinel))
    with open(path + ".manifest.json") as f:
        doc = manifest.load(f.read())
    lying = forge(tmp_path / "..", forged_members([("./d", tarfile.SYMTYPE, OUT)], sentinel))
    shutil.copy(path + ".manifest.json", lying + ".manifest.json")
    volume = tmp_path / "volume"
    volume.mkdir()
    with pytest.raises(DockerError, match="archive member './d' is a symlink, but the manifest lists a dir"):
        transfer.staged_copy(archive.ArchiveSource(lying, "none", doc), volume_access.LocalRoot(str(volume), "v"),
                             "checksum")
    assert os.listdir(str(volume)) == []


@pytest.mark.parametrize("name", ["v010.tar", "v010.tar.gz"])
def test_backups_of_version_0_1_0_still_restore(tmp_path, name):
    path = os.path.join(FIXTURES, name)
    compression = "gzip" if name.endswith(".gz") else "none"
    volume = tmp_path / "volume"
    volume.mkdir()
    with open(path + ".manifest.json") as f:
        doc = manifest.load(f.read())
    result = restore(path, volume, compression)
    assert result["digest"] == doc["digest"] == manifest.digest(manifest.from_directory(str(volume)))
    assert os.readlink(str(volume / "abs-link")) == "/etc" and (volume / "d" / "sub" / "file").stat().st_uid == 1234
    dest = RecordingApiRoot()
    transfer.copy_into(archive.ArchiveSource(path, compression, doc), dest, True, [0])
    assert manifest.digest(manifest.from_tar_stream(io.BytesIO(b"".join(dest.sent)))) == doc["digest"]


def test_ownership_is_not_carried_onto_a_symlinks_target(tmp_path, sentinel, monkeypatch):
    """A symlink in the tree, and a directory swapped for a symlink once the chown has begun."""
    tree = tmp_path / "tree"
    (tree / "d" / "a").mkdir(parents=True)
    os.symlink(str(sentinel), str(tree / "link"))
    before = snapshot(sentinel)
    chown, lchown, swapped = os.chown, os.lchown, []

    def swap_once():
        if not swapped:
            swapped.append(True)
            os.rename(str(tree / "d"), str(tmp_path / "moved"))
            os.symlink(str(sentinel), str(tree / "d"))

    def swapping_chown(*args, **kwargs):
        swap_once()
        return chown(*args, **kwargs)

    def swapping_lchown(*args):
        swap_once()
        return lchown(*args)

    monkeypatch.setattr(os, "chown", swapping_chown)
    monkeypatch.setattr(os, "lchown", swapping_lchown)
    try:
        LocalRoot(str(tree)).apply_ownership(4321, 4321, None, True, False)
    except DockerError as exc:
        assert "changed while it was read" in str(exc)
    monkeypatch.undo()
    assert snapshot(sentinel) == before
    assert os.lstat(str(tree / "link")).st_uid == 4321


def test_ownership_refuses_a_root_that_is_a_symlink(tmp_path, sentinel):
    os.symlink(str(sentinel), str(tmp_path / "root"))
    before = snapshot(sentinel)
    for check_mode in (True, False):
        with pytest.raises(DockerError, match="root is a symbolic link; refusing to follow it"):
            LocalRoot(str(tmp_path / "root")).apply_ownership(4321, 4321, 0o700, True, check_mode)
    assert snapshot(sentinel) == before and os.stat(str(sentinel)).st_uid == 0


def swap_during_walk(monkeypatch, tree, target):
    """Make manifest.walk swap tree/d for a symlink to target right after it yields 'd'."""
    walk = manifest.walk

    def swapping(root, exclude=None, vanished_ok=False):
        for item in walk(root, exclude, vanished_ok):
            yield item
            if item[0] == "d":
                os.rename(str(tree / "d"), str(tree.parent / "moved"))
                os.symlink(str(target), str(tree / "d"))

    monkeypatch.setattr(manifest, "walk", swapping)


@pytest.mark.parametrize("reader", ["local_tar", "from_directory", "copy_tree"])
def test_a_directory_swapped_for_a_symlink_is_not_read_through(tmp_path, sentinel, monkeypatch, reader):
    """Backups, manifests and relocations read the volume by descriptor: host files never get in."""
    tree = tmp_path / "tree"
    (tree / "d" / "a" / "b").mkdir(parents=True)
    swap_during_walk(monkeypatch, tree, sentinel)
    read = {
        "local_tar": lambda: b"".join(bytes(c) for c in tar_stream.local_tar(str(tree), [], True)),
        "from_directory": lambda: manifest.from_directory(str(tree)),
        "copy_tree": lambda: tree_copy.copy_tree(str(tree), str(tmp_path / "copy"), True),
    }[reader]
    with pytest.raises(DockerError, match="d changed while it was read"):
        read()
    assert not (tmp_path / "copy" / "d" / "a" / "b" / "secret").exists()
