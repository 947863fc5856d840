"""Manifests: the same tree gives the same manifest from disk and from a tar stream."""

import gc
import io
import os
import stat
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


def awkward_tree(root):
    """Every kind of entry the transfer promises to keep."""
    os.makedirs(os.path.join(root, "dir with space", "empty"))
    os.makedirs(os.path.join(root, "setgid"))
    os.chmod(os.path.join(root, "setgid"), 0o2775)
    with open(os.path.join(root, "dir with space", "ünïcode"), "wb") as f:
        f.write(b"x" * 3000)
    with open(os.path.join(root, "new\nline"), "wb") as f:
        f.write(b"line")
    with open(os.path.join(root, "sparse"), "wb") as f:
        f.seek(5 << 20)
        f.write(b"end")
    os.link(os.path.join(root, "new\nline"), os.path.join(root, "a-hardlink"))
    os.symlink("does/not/exist", os.path.join(root, "dangling"))
    os.symlink("dir with space", os.path.join(root, "dirlink"))
    os.mkfifo(os.path.join(root, "fifo"))
    os.chmod(os.path.join(root, "new\nline"), 0o4750)
    os.utime(os.path.join(root, "sparse"), (1000000000, 1000000000))
    os.makedirs(os.path.join(root, manifest.STAGING, "data"))


def tar_of(root):
    entries = []
    data = b"".join(bytes(chunk) for chunk in tar_stream.local_tar(root, entries, True))
    return data, entries


def test_directory_and_tar_agree(tmp_path):
    awkward_tree(str(tmp_path))
    walked = manifest.from_directory(str(tmp_path))
    data, during = tar_of(str(tmp_path))
    read = manifest.from_tar_stream(io.BytesIO(data))
    assert manifest.digest(walked) == manifest.digest(during) == manifest.digest(read)
    paths = {e["path"] for e in walked}
    assert {"", "dir with space/empty", "new\nline", "dangling", "fifo", "sparse"} <= paths
    assert not any(p.startswith(manifest.STAGING) for p in paths)
    by_path = {e["path"]: e for e in walked}
    assert by_path["new\nline"]["hardlink"] == "a-hardlink" or by_path["a-hardlink"]["hardlink"] == "new\nline"
    assert by_path["a-hardlink"]["mode"] == 0o4750
    assert by_path["setgid"]["mode"] == 0o2775
    assert by_path["dangling"]["target"] == "does/not/exist"
    assert by_path["sparse"]["mtime"] == 1000000000
    assert "mtime" not in by_path[""]


def test_tar_of_python_tarfile_with_prefix(tmp_path):
    awkward_tree(str(tmp_path))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.add(str(tmp_path), arcname="data", filter=lambda i: None if manifest.STAGING in i.name else i)
    read = manifest.from_tar_stream(io.BytesIO(buf.getvalue()), prefix="data")
    assert manifest.digest(read) == manifest.digest(manifest.from_directory(str(tmp_path)))


def test_copy_tree_keeps_everything(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    awkward_tree(str(src))
    before = open_fds()
    entries, _copies = tree_copy.copy_tree(str(src), str(dst), True)
    assert open_fds() == before
    assert manifest.digest(entries) == manifest.digest(manifest.from_directory(str(src)))
    assert manifest.digest(manifest.from_directory(str(dst))) == manifest.digest(entries)
    st = os.stat(dst / "sparse")
    assert st.st_blocks * 512 < st.st_size
    assert os.stat(dst / "new\nline").st_ino == os.stat(dst / "a-hardlink").st_ino


def test_tee_forwards_every_byte(tmp_path):
    awkward_tree(str(tmp_path))
    data = tar_of(str(tmp_path))[0]
    chunks = [data[i:i + 7777] for i in range(0, len(data), 7777)]
    builder = manifest.TarManifest(".")
    forwarded = b"".join(tar_stream.tee_tar(chunks, builder, True, [0]))
    assert forwarded == data
    assert manifest.digest(builder.result()) == manifest.digest(manifest.from_directory(str(tmp_path)))


def test_differences_and_levels():
    a = [manifest.make_entry("", "dir", 0o755, 0, 0),
         manifest.make_entry("f", "file", 0o644, 1, 1, size=3, mtime=5, sha256="aa")]
    b = [dict(a[0]), dict(a[1], sha256="bb"), manifest.make_entry("g", "dir", 0o755, 0, 0, mtime=1)]
    assert manifest.differences(a, b) == ["f: sha256 differ", "g: unexpected"]
    assert manifest.digest(manifest.at_level(a, "size")) == manifest.digest(manifest.at_level(b[:2], "size"))
    assert manifest.digest(a) != manifest.digest(b[:2])
    assert manifest.summary(a) == {"bytes": 3, "files": 1}
    assert manifest.is_empty(a[:1]) and not manifest.is_empty(a)


def test_dump_and_load_round_trip():
    entries = [manifest.make_entry("", "dir", 0o755, 0, 0),
               manifest.make_entry("nl\nü", "file", 0o644, 1, 1, size=3, mtime=5, sha256="aa")]
    doc = manifest.load(manifest.dump(entries, volume="v"))
    assert doc["entries"] == manifest.canonical(entries) and doc["volume"] == "v"
    tampered = manifest.dump(entries).replace('"size":3', '"size":4')
    with pytest.raises(ValueError, match="digest"):
        manifest.load(tampered)
    with pytest.raises(ValueError):
        manifest.load('{"format": 2}')


@pytest.mark.parametrize("name,prefix,expected", [
    (".", ".", ""), ("./a/b", ".", "a/b"), ("./d/", ".", "d"),
    ("data", "data", ""), ("data/x", "data", "x"), ("other/x", "data", None),
])
def test_tar_path(name, prefix, expected):
    assert manifest.tar_path(name, prefix) == expected


def test_tee_rewrites_owners():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, uid, gid, data in ((".", tarfile.DIRTYPE, 100000, 100000, b""),
                                           ("./f ü", tarfile.REGTYPE, 101234, 105678, b"abc"),
                                           ("./l", tarfile.SYMTYPE, 100000, 100000, b"")):
            info = tarfile.TarInfo(name)
            info.type, info.uid, info.gid, info.mtime, info.size = kind, uid, gid, 5, len(data)
            info.linkname = "f ü" if kind == tarfile.SYMTYPE else ""
            tf.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    ids = volume_access.userns_ids([(0, 100000, 65536)], [(0, 100000, 65536)])
    builder = manifest.TarManifest(".")
    rewritten = b"".join(tar_stream.tee_tar([data[i:i + 700] for i in range(0, len(data), 700)], builder, True, [0],
                                            ids=ids))
    read = manifest.from_tar_stream(io.BytesIO(rewritten))
    by_path = {e["path"]: e for e in read}
    assert (by_path["f ü"]["uid"], by_path["f ü"]["gid"], by_path[""]["uid"]) == (1234, 5678, 0)
    assert manifest.digest(read) == manifest.digest(builder.result())
    assert manifest.digest(manifest.from_tar_stream(io.BytesIO(data), ids=ids)) == manifest.digest(read)


def open_fds():
    gc.collect()  # directories of earlier tests still held by their tracebacks' frames close now, not mid-test
    return len(os.listdir("/proc/self/fd"))


def test_read_ahead_opens_the_files_to_read(tmp_path):
    awkward_tree(str(tmp_path))
    with open(str(tmp_path / "empty"), "wb"):
        pass
    before = open_fds()
    seen, opened = [], []
    for path, _parent, _name, st, fd in manifest.read_ahead(manifest.walk(str(tmp_path)), files=2, size=1 << 20):
        seen.append(path)
        if fd is not None:
            assert os.path.samestat(os.fstat(fd), st)
            os.close(fd)
            opened.append(path)
    del _parent  # the last entry's directory, open while it is referenced
    assert seen == [p for p, _d, _n, _s in manifest.walk(str(tmp_path))]
    assert open_fds() == before
    # regular files with data, and of the two links of one file only the first one walked
    links = [p for p in seen if p in ("new\nline", "a-hardlink")]
    assert sorted(opened) == sorted(["dir with space/ünïcode", "sparse", links[0]])


def test_read_ahead_closes_what_is_left_when_abandoned(tmp_path):
    for i in range(20):
        with open(str(tmp_path / ("f%02d" % i)), "wb") as f:
            f.write(b"x")
    before = open_fds()
    walked = manifest.read_ahead(manifest.walk(str(tmp_path)), files=8)
    next(walked)
    assert open_fds() == before + 8 + 1  # the files ahead, and the directory being walked
    walked.close()
    assert open_fds() == before


def test_local_tar_opens_what_could_not_be_opened_ahead(tmp_path, monkeypatch):
    awkward_tree(str(tmp_path))
    monkeypatch.setattr(manifest, "_open_ahead", lambda parent, name, st, length: None)
    before = open_fds()
    data, during = tar_of(str(tmp_path))
    assert manifest.digest(during) == manifest.digest(manifest.from_tar_stream(io.BytesIO(data))) \
        == manifest.digest(manifest.from_directory(str(tmp_path)))
    assert open_fds() == before


def test_extract_tar_keeps_everything(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    os.mkdir(src)
    awkward_tree(src)
    entries = []
    copies = tar_stream.extract_tar(tar_stream.local_tar(src, entries, True), dst)
    restored = manifest.from_directory(dst)
    assert manifest.digest(restored) == manifest.digest(entries)
    by_path = {e["path"]: e for e in entries}
    assert copies and all(sha == by_path[path]["sha256"] for path, (_i, _s, _m, sha) in copies.items())
    assert manifest.digest(manifest.from_directory(dst, known=copies)) == manifest.digest(entries)
    assert os.stat(os.path.join(dst, "new\nline")).st_ino == os.stat(os.path.join(dst, "a-hardlink")).st_ino
    assert os.stat(os.path.join(dst, "new\nline")).st_mode & 0o7777 == 0o4750


def crafted_tar(members):
    """A tar of (name, kind, extra) members: kind is a tarfile type, extra its linkname or content."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o755
            if kind == tarfile.REGTYPE:
                info.size = len(extra)
                tar.addfile(info, io.BytesIO(extra))
            else:
                info.linkname = extra
                tar.addfile(info)
    return out.getvalue()


@pytest.mark.parametrize("members,message", [
    ([("./../evil", tarfile.REGTYPE, b"x")], "leads out of the volume"),
    ([("/etc/evil", tarfile.REGTYPE, b"x")], "leads out of the volume"),
    ([("./d", tarfile.SYMTYPE, "OUTSIDE"), ("./d/evil", tarfile.REGTYPE, b"x")], "not a directory"),
    ([("./s", tarfile.SYMTYPE, "OUTSIDE/f"), ("./h", tarfile.LNKTYPE, "./s")], "not a file"),
    ([("./h", tarfile.LNKTYPE, "../OUTSIDE/f")], "leads out of the volume"),
    ([("./c", b"Z", "")], "does not hold"),
    # a symlink to a directory outside, then members below it at depth 2 and 3 (the parent of each is a
    # directory there), a hard link to a file there, a hard link made there
    ([("./d", tarfile.SYMTYPE, "OUTSIDE"), ("./d/a/evil", tarfile.REGTYPE, b"x")], "'d' is a symbolic link"),
    ([("./d", tarfile.SYMTYPE, "OUTSIDE"), ("./d/a/b/evil", tarfile.REGTYPE, b"x")], "'d' is a symbolic link"),
    ([("./d", tarfile.SYMTYPE, "OUTSIDE"), ("./h", tarfile.LNKTYPE, "./d/a/secret")], "'d' is a symbolic link"),
    ([("./x", tarfile.REGTYPE, b"x"), ("./d", tarfile.SYMTYPE, "OUTSIDE"), ("./d/a/h", tarfile.LNKTYPE, "./x")],
     "'d' is a symbolic link"),
])
def test_extract_tar_refuses_members_that_leave_the_volume(tmp_path, members, message):
    outside = tmp_path / "OUTSIDE"
    (outside / "a" / "b").mkdir(parents=True)
    (outside / "f").write_bytes(b"keep")
    (outside / "a" / "secret").write_bytes(b"keep")
    before = snapshot(outside)
    data = crafted_tar([(n, k, str(outside) if e == "OUTSIDE" else e.replace("OUTSIDE", str(outside))
                         if isinstance(e, str) else e) for n, k, e in members])
    with pytest.raises(transfer.DockerError) as refused:
        tar_stream.extract_tar(iter([data]), str(tmp_path / "dst"))
    assert snapshot(outside) == before  # nothing outside was created, changed or linked
    assert message in str(refused.value)
    assert not os.path.exists("/etc/evil") and not (tmp_path / "evil").exists()


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_extract_tar_file_copies_contents_from_their_offsets(tmp_path, monkeypatch, kernel_copy):
    monkeypatch.setattr(tree_copy, "_KERNEL_COPY", [kernel_copy and hasattr(os, "copy_file_range")])
    src, dst, path = str(tmp_path / "src"), str(tmp_path / "dst"), str(tmp_path / "a.tar")
    os.mkdir(src)
    awkward_tree(src)
    with open(os.path.join(src, "big"), "wb") as f:
        f.write(os.urandom((3 << 20) + 5))
    entries = []
    archive.write_archive(tar_stream.local_tar(src, entries, True), path, "none")
    counter = [0]
    copies = tar_stream.extract_tar_file(path, dst, counter=counter)
    assert manifest.digest(manifest.from_directory(dst)) == manifest.digest(entries)
    assert manifest.digest(manifest.from_directory(dst, known=copies)) == manifest.digest(entries)
    inodes = {(st.st_dev, st.st_ino): st.st_size for _p, _d, _n, st in manifest.walk(src) if stat.S_ISREG(st.st_mode)}
    assert counter[0] == sum(inodes.values())  # every file's content once, hard links not again


def test_digest_lines_are_json_encoder_lines():
    """The digest's entry encoder (the C encoder made once, where there is one) writes what
    json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode writes: digests of existing
    archives, records and snapshots stay valid."""
    import hashlib
    import json

    plain = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
    entries = [{"path": "d%d/f\udcfe%d \u00fc\n\"q\"" % (i // 7, i), "type": ("file", "dir", "symlink")[i % 3],
                "mode": "0%o" % (0o600 + i % 64), "uid": i, "gid": 100000 + i, "size": i * 4099,
                "mtime": 1700000000 + i, "sha256": "%064x" % i, "target": "../\t%d" % i, "hardlink": None}
               for i in range(50)]
    text = "".join(plain.encode(e) + "\n" for e in manifest.canonical(entries))
    assert manifest.digest(entries) == "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()
    assert all(manifest._encode_entry(e) == plain.encode(e) for e in entries)


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_from_directory_vanished_ok_leaves_out_what_goes_during_the_read(tmp_path, monkeypatch, kind):
    """An entry a container removes after the walk listed it fails the read, unless vanished_ok: then it is
    left out (volume_relocate reads a tree whose containers still run before it stops them)."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"a")
    if kind == "file":
        (tmp_path / "d" / "b").write_bytes(b"b")
    else:
        os.symlink("a", str(tmp_path / "d" / "b"))
    walk = manifest.walk

    def removing(root, exclude=None, vanished_ok=False):
        for item in walk(root, exclude, vanished_ok):
            if item[0] == "d/b":
                os.unlink(str(tmp_path / "d" / "b"))
            yield item

    monkeypatch.setattr(manifest, "walk", removing)
    with pytest.raises(FileNotFoundError):
        manifest.from_directory(str(tmp_path))
    (tmp_path / "d" / "b").write_bytes(b"b")
    stats = {}
    entries = manifest.from_directory(str(tmp_path), stats=stats, vanished_ok=True)
    assert [e["path"] for e in entries] == ["", "d", "d/a"]
    assert set(stats) == {"d/a", None}
