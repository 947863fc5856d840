"""repository.py: picking a snapshot, the stat cache of the metadata-only unchanged check, and a tree snapshot's
`restic dump` stream (hard links and fifos as regular files, host owners, members below `_data/`) made into an
archive of its manifest and checked member by member like one."""

import io
import os
import tarfile

import pytest

from ansible_collections.persist.docker.plugins.module_utils import archive_check, manifest, repository, tar_stream
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

SUBJECT = "restic repository '/srv/r'"


def snap(i, **extra):
    return dict(dict(id=("%02x" % i) * 32, short_id=("%02x" % i) * 4, digest="sha256:" + "0" * 64), **extra)


def test_pick_snapshot():
    snaps = [snap(1), snap(2), snap(0xab)]
    assert repository.pick_snapshot(snaps, "latest", "v", SUBJECT)["id"] == snap(0xab)["id"]
    assert repository.pick_snapshot(snaps, None, "v", SUBJECT)["id"] == snap(0xab)["id"]
    assert repository.pick_snapshot(snaps, "02020202", "v", SUBJECT)["id"] == snap(2)["id"]
    with pytest.raises(DockerError, match="holds no complete snapshot 03030303 of volume 'v'"):
        repository.pick_snapshot(snaps, "03030303", "v", SUBJECT)
    with pytest.raises(DockerError, match="not a snapshot id"):
        repository.pick_snapshot(snaps, "0202", "v", SUBJECT)
    with pytest.raises(DockerError, match="not a snapshot id"):
        repository.pick_snapshot(snaps, "LATEST", "v", SUBJECT)
    with pytest.raises(DockerError, match="holds no complete snapshot of volume 'v'; nothing was restored"):
        repository.pick_snapshot([], "latest", "v", SUBJECT)


def test_stat_cache_round_trip():
    entries = [manifest.make_entry("", "dir", 0o755, 0, 0),
               manifest.make_entry("a", "file", 0o644, 0, 0, size=3, mtime=1, sha256="aa"),
               manifest.make_entry("b", "file", 0o644, 0, 0, size=3, mtime=1, sha256="bb"),
               manifest.make_entry("l", "symlink", 0o777, 0, 0, mtime=1, target="a")]
    stats = {"a": (10, 3, 1000, 2000), "l": (11, 1, 1, 1), None: 6}
    doc = manifest.load(repository.manifest_text(entries, None, "v", "tree", stats))
    assert doc["volume"] == "v" and doc["snapshot_format"] == "tree"
    assert repository.stat_cache(doc) == {"a": (10, 3, 1000, 2000, "aa")}  # no stat: b is hashed again
    assert repository.cache_of(entries, stats) == {"a": (10, 3, 1000, 2000, "aa")}
    assert repository.stat_cache(dict(entries=entries, stat={"a": [1, 2]})) == {}


# -- a tree snapshot's dump as an archive ----------------------------------------------------------------

def member(name, data=b"", kind=tarfile.REGTYPE, mode=0o644, uid=0, gid=0, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime, info.linkname = kind, mode, uid, gid, 5, linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def dump_of(*members):
    """A tar stream as restic 0.14's dump writes one (no member for the top directory itself)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return [out.getvalue()]


ENTRIES = manifest.link_groups([
    manifest.make_entry("", "dir", 0o750, 5, 6),
    manifest.make_entry("a", "file", 0o2750, 1234, 5678, size=2, mtime=9, sha256="x"),
    manifest.make_entry("a-b", "dir", 0o755, 0, 0, mtime=9),
    manifest.make_entry("d", "dir", 0o700, 1, 1, mtime=9),
    manifest.make_entry("d/hl", "file", 0o2750, 1234, 5678, size=2, mtime=9, sha256="x"),
    manifest.make_entry("pipe", "fifo", 0o600, 7, 7, mtime=9),
    manifest.make_entry("s", "symlink", 0o777, 0, 0, mtime=9, target="a"),
], [["a", "d/hl"]])


def converted(*members, entries=None):
    entries = ENTRIES if entries is None else entries
    chunks = repository.tree_as_archive(dump_of(*members), entries, "_data", archive_check.MemberCheck(entries),
                                        "snapshot x")
    data = b"".join(bytes(c) for c in chunks)
    return {m.name: m for m in tarfile.open(fileobj=io.BytesIO(data))}


def test_dump_made_into_the_manifest_archive():
    found = converted(member("_data/a", b"hi"), member("_data/a-b", kind=tarfile.DIRTYPE),
                      member("_data/d", kind=tarfile.DIRTYPE), member("_data/d/hl", b"hi"),
                      member("_data/pipe"), member("_data/s", kind=tarfile.SYMTYPE, mode=0o777, linkname="a"))
    assert found["./d/hl"].islnk() and found["./d/hl"].linkname == "./a"
    root = found["."]  # from the manifest, first: the staged root has the volume's owner (userns-remap)
    assert root.isdir() and (root.mode, root.uid, root.gid) == (0o750, 5, 6)
    assert found["./a"].isreg() and (found["./a"].mode, found["./a"].uid, found["./a"].gid) == (0o2750, 1234, 5678)
    assert found["./pipe"].isfifo() and found["./pipe"].mode == 0o600 and found["./pipe"].uid == 7
    assert found["./d"].mode == 0o700 and found["./d"].mtime == 9
    assert found["./s"].issym() and found["./s"].linkname == "a"


def test_a_hard_link_whose_first_path_comes_later():
    # restic walks directory by directory: "d/hl" comes before "e" although "a" sorts first in the manifest
    entries = manifest.link_groups([
        manifest.make_entry("", "dir", 0o755, 0, 0),
        manifest.make_entry("d", "dir", 0o755, 0, 0, mtime=9),
        manifest.make_entry("d/x", "file", 0o644, 0, 0, size=2, mtime=9, sha256="x"),
        manifest.make_entry("d-", "file", 0o644, 0, 0, size=2, mtime=9, sha256="x"),
    ], [["d/x", "d-"]])
    assert entries[3].get("hardlink") is None and entries[2]["hardlink"] == "d-"
    found = converted(member("_data/d", kind=tarfile.DIRTYPE), member("_data/d/x", b"hi"), member("_data/d-", b"hi"),
                      entries=entries)
    assert found["./d/x"].isreg() and found["./d-"].islnk() and found["./d-"].linkname == "./d/x"


@pytest.mark.parametrize("members, message", [
    ([member("_data/other", b"hi")], "is not in the backup's manifest"),
    ([member("elsewhere/a", b"hi")], "is not in the backup's manifest"),
    ([member("_data/../../etc/passwd", b"hi")], "cannot be restored"),
    ([member("_data/a", b"hello")], "holds 5 bytes, but the manifest lists 2"),
    ([member("_data/a", b"hi"), member("_data/s", kind=tarfile.SYMTYPE, linkname="/etc")], "not what its manifest"),
    ([member("_data/d", b"hi")], "not what its manifest lists"),
    ([member("_data/a", b"hi"), member("_data/a", b"hi")], "comes twice"),
    ([member("_data/a", b"hi"), member("_data/s", b"a")], "not what its manifest lists"),
    ([member("_data/pipe", b"x")], "not what its manifest lists"),
])
def test_a_dump_the_manifest_does_not_describe_is_refused(members, message):
    with pytest.raises(DockerError, match=message):
        converted(*members)


def extracted(tmp_path, name, *members, entries=None, direct=True):
    """The manifest of the tree made of a dump: by tree_members() and extract_members(), or by tree_as_archive()
    and extract_tar()."""
    entries = ENTRIES if entries is None else entries
    check = archive_check.MemberCheck(entries)
    root = str(tmp_path / name)
    if direct:
        copies = tar_stream.extract_members(repository.tree_members(dump_of(*members), entries, "_data", check,
                                                                    "snapshot x"), root)
    else:
        copies = tar_stream.extract_tar(repository.tree_as_archive(dump_of(*members), entries, "_data", check,
                                                                   "snapshot x"), root)
    return manifest.from_directory(root, True), copies


DUMP = (member("_data/a", b"hi"), member("_data/a-b", kind=tarfile.DIRTYPE), member("_data/d", kind=tarfile.DIRTYPE),
        member("_data/d/hl", b"hi"), member("_data/pipe"),
        member("_data/s", kind=tarfile.SYMTYPE, mode=0o777, linkname="a"))


@pytest.mark.skipif(os.geteuid() != 0, reason="the manifest's owners need root")
def test_the_members_of_a_dump_extracted_without_a_tar_made_of_them(tmp_path):
    direct, copies = extracted(tmp_path, "direct", *DUMP)
    through_tar, _copies = extracted(tmp_path, "tar", *DUMP, direct=False)
    assert direct == through_tar
    wanted = dict((e["path"], e) for e in ENTRIES)
    got = dict((e["path"], e) for e in direct)
    for path in ("a", "d/hl", "pipe", "s", "d"):
        assert {k: v for k, v in got[path].items() if k != "sha256"} == \
            {k: v for k, v in wanted[path].items() if k != "sha256"}, path
    assert got["a"]["sha256"] == got["d/hl"]["sha256"] == manifest.hash_file(str(tmp_path / "direct" / "a"))
    assert sorted(copies) == ["a"]  # the file written, read back and hashed (d/hl is a link to it)


@pytest.mark.parametrize("members, message", [
    ([member("_data/other", b"hi")], "is not in the backup's manifest"),
    ([member("_data/a", b"hello")], "holds 5 bytes, but the manifest lists 2"),
    ([member("_data/a", b"hi"), member("_data/s", kind=tarfile.SYMTYPE, linkname="/etc")], "not what its manifest"),
])
def test_members_of_a_dump_the_manifest_does_not_describe_are_refused(tmp_path, members, message):
    with pytest.raises(DockerError, match=message):
        extracted(tmp_path, "x", *members)


def test_a_dump_cut_short_is_named(tmp_path):
    whole = dump_of(member("_data/a", b"hi" * 4000, mode=0o2750, uid=1234, gid=5678))[0]
    entries = [manifest.make_entry("", "dir", 0o750, 5, 6),
               manifest.make_entry("a", "file", 0o2750, 1234, 5678, size=8000, mtime=5, sha256="x")]
    pairs = repository.tree_members([whole[:3000]], entries, "_data", archive_check.MemberCheck(entries),
                                    "snapshot x")
    with pytest.raises(DockerError, match="snapshot x is not a valid tar stream"):
        tar_stream.extract_members(pairs, str(tmp_path / "cut"))


def test_run_markers_tell_which_runs_of_a_repository_never_ended(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSIST_DOCKER_STATE_DIR", str(tmp_path))
    assert repository.runs_left("s3:host/bucket") == []  # no state directory yet
    first = repository.mark_run("s3:host/bucket", "r1")
    other = repository.mark_run("/srv/other", "r2")
    assert first and other and oct((tmp_path / "restic").stat().st_mode & 0o777) == "0o700"
    assert repository.runs_left("s3:host/bucket") == [first]
    assert repository.runs_left("/srv/other") == [other]
    repository.clear_marks([first, first])  # a second removal is no error
    assert repository.runs_left("s3:host/bucket") == []
    assert repository.runs_left("/srv/other") == [other]


class NoDump:
    subject = SUBJECT

    def stream(self, *args):
        raise AssertionError("restic dump run for a manifest this host keeps: %r" % (args,))


def test_the_manifest_a_host_keeps_is_not_read_from_the_repository(tmp_path):
    entries = [manifest.make_entry("", "dir", 0o755, 0, 0),
               manifest.make_entry("a", "file", 0o644, 0, 0, size=3, mtime=1, sha256="aa")]
    text = repository.manifest_text(entries, None, "v", "tree", {"a": (1, 3, 1, 1)}, run="r1")
    kept = tmp_path / "kept.json"
    kept.write_text(text)
    doc = manifest.load(text)
    snapshot = snap(1, digest=doc["digest"], run="r1", manifest_id="m" * 64)
    assert repository.load_manifest(NoDump(), snapshot, "v", str(kept))["entries"] == doc["entries"]
    # another run's manifest, or none kept: read from the repository
    for other in (dict(snapshot, run="r2"), snapshot):
        with pytest.raises(AssertionError, match="restic dump run"):
            repository.load_manifest(NoDump(), other, "v", str(kept) if other is not snapshot else None)
