"""Pure decisions of the transfer: the relocation plan, staging state, archives."""

import errno
import fcntl
import gzip
import hashlib
import io
import os
import tarfile
import threading
import time

import pytest

from ansible_collections.persist.docker.plugins.module_utils import (
    archive,
    buffers,
    manifest,
    tar_stream,
    transfer,
    tree_copy,
    volume_access,
)


def plan(source=True, dest=True, staging=None, in_sync=False, empty=True, mode="copy", force=False, ours=False,
         verify="checksum"):
    return transfer.plan_relocation(source, dest, staging=staging, in_sync=in_sync, dest_empty=empty,
                                    mode=mode, force=force, ours=ours, verify=verify)[0]


@pytest.mark.parametrize("kwargs,action", [
    (dict(dest=False), "copy"),
    (dict(), "copy"),
    (dict(in_sync=True, empty=False), "none"),
    (dict(in_sync=True, empty=False, mode="move"), "remove-source"),
    (dict(empty=False), "fail"),
    (dict(empty=False, force=True), "copy"),
    (dict(staging=("partial", None)), "copy"),
    (dict(staging=("moving", "sha256:x"), empty=False, ours=True), "resume"),
    (dict(staging=("verified", "sha256:x"), empty=False, ours=True), "resume"),
    (dict(source=False), "fail"),
    (dict(source=False, mode="move", empty=False), "none"),
    (dict(source=False, mode="move", staging=("partial", None)), "fail"),
])
def test_plan_relocation(kwargs, action):
    assert plan(**kwargs) == action


@pytest.mark.parametrize("kwargs,action", [
    # a leftover partial staging directory is no licence to replace the visible data
    (dict(staging=("partial", None), empty=False), "fail"),
    (dict(staging=("partial", None), empty=False, force=True), "copy"),
    (dict(staging=("partial", None), empty=False, in_sync=True), "copy"),
    # a staged copy of another digest is neither resumed nor promoted unverified
    (dict(staging=("verified", "sha256:other")), "fail"),
    (dict(staging=("moving", "sha256:other")), "fail"),
    (dict(staging=("verified", "sha256:other"), empty=False, in_sync=True), "fail"),
    (dict(staging=("verified", "sha256:other"), force=True), "copy"),
    (dict(staging=("moving", "sha256:other"), empty=False, force=True), "copy"),
    (dict(staging=("verified", "sha256:other"), mode="move"), "fail"),
])
def test_plan_relocation_leftover_staging(kwargs, action):
    assert plan(**kwargs) == action


@pytest.mark.parametrize("kwargs", [
    dict(mode="move", verify="none"),
    dict(mode="move", verify="none", in_sync=True, empty=False),
    dict(mode="move", verify="none", force=True, dest=False),
])
def test_plan_relocation_refuses_an_unchecked_move(kwargs):
    action, reason = transfer.plan_relocation(
        kwargs.get("source", True), kwargs.get("dest", True), staging=None, in_sync=kwargs.get("in_sync", False),
        dest_empty=kwargs.get("empty", True), mode="move", force=kwargs.get("force", False), verify="none")
    assert action == "fail" and "verify: none" in reason
    assert transfer.refuse_options("move", "none") == reason
    assert transfer.refuse_options("copy", "none") is None and transfer.refuse_options("move", "size") is None


@pytest.mark.parametrize("text,state", [
    (None, ("partial", None)),
    ("verified sha256:ab\n", ("verified", "sha256:ab")),
    ("moving sha256:ab", ("moving", "sha256:ab")),
    ("garbage", ("partial", None)),
    ("", ("partial", None)),
])
def test_parse_state(text, state):
    assert transfer.parse_state(text) == state


@pytest.mark.parametrize("path,option,expected", [
    ("/b/x.tar", "auto", "none"), ("/b/x.tar.gz", "auto", "gzip"), ("/b/x.tgz", "auto", "gzip"),
    ("/b/x.tar.zst", "auto", "zstd"), ("/b/x.tar", "gzip", "gzip"),
])
def test_pick_compression(path, option, expected):
    assert archive.pick_compression(path, option) == expected


def test_gzip_round_trip():
    comp = archive.compressor("gzip")
    data = [bytes([i % 256]) * 100000 for i in range(20)]
    packed = b"".join(comp.compress(d) for d in data) + comp.flush()
    assert b"".join(archive.decompressed([packed[i:i + 999] for i in range(0, len(packed), 999)], "gzip")) \
        == b"".join(data)


def test_userns_ids():
    assert volume_access.userns_ids(None, None) is None
    ids = volume_access.userns_ids([(0, 100000, 65536)], [(0, 100000, 65536)])
    assert ids(100033, 100034) == (33, 34)
    back = volume_access.host_ids([(0, 100000, 65536)], [(0, 100000, 65536)])
    assert back(33, 34) == (100033, 100034)
    assert volume_access.userns_ids([(0, 100000, 65536)], None)(100033, 7) == (33, 7)
    with pytest.raises(transfer.DockerError, match="host ids 5:100034 lies outside the user namespace"):
        ids(5, 100034)
    with pytest.raises(transfer.DockerError, match="cannot map the ids"):
        back(70000, 1)


def test_chunk_reader_rest():
    reader = tar_stream.ChunkReader([b"abc", b"def", b"gh"])
    assert reader.read(2) == b"ab"
    assert b"".join(reader.rest()) == b"cdefgh"


@pytest.mark.parametrize("name,kind,extra", [
    ("./file", tarfile.REGTYPE, dict(size=12345)),
    ("./dir", tarfile.DIRTYPE, {}),
    ("./link", tarfile.SYMTYPE, dict(linkname="../somewhere/else")),
    ("./hard", tarfile.LNKTYPE, dict(linkname="./file")),
    ("./fifo", tarfile.FIFOTYPE, {}),
    ("./" + "n" * 120, tarfile.REGTYPE, dict(size=1)),
    ("./ünï", tarfile.REGTYPE, dict(size=3)),
    ("./bad\udcff", tarfile.SYMTYPE, dict(linkname="t\udcff")),
    ("./huge", tarfile.REGTYPE, dict(size=9 << 30)),
    ("./big-ids", tarfile.REGTYPE, dict(size=0, uid=3000000, gid=2100000)),
])
def test_member_header_is_what_tarfile_writes(name, kind, extra):
    fields = dict(dict(uid=1000, gid=100, size=0, linkname=""), **extra)
    got = tar_stream.member_header(name, kind, 0o104755, fields["uid"], fields["gid"], 1700000000,
                                   fields["size"], fields["linkname"])
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, 0o4755, fields["uid"], fields["gid"], 1700000000
    info.size, info.linkname, info.uname, info.gname = fields["size"], fields["linkname"], "", ""
    want = info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")
    # tarfile before 3.9 wrote "0000000" as device numbers of members that are not devices; GNU tar leaves them empty
    assert got[:-512] == want[:-512]
    head, tail = got[-512:], want[-512:]
    assert head[:148] + head[156:329] + head[345:] == tail[:148] + tail[156:329] + tail[345:]
    member = tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    assert (member.type, member.mode, member.mtime) == (kind, 0o4755, 1700000000)


def test_buffer_pool_frees_a_buffer_after_its_last_hold():
    pool = buffers.BufferPool(count=8, size=16)
    buf = pool.take()
    chunk = memoryview(buf)[4:8]
    pool.hold(chunk)
    pool.hold(chunk)
    pool.hold(b"not pooled")
    pool.release(buf)
    pool.release(chunk)
    assert pool.free.qsize() == 7
    pool.release(chunk)
    assert pool.free.qsize() == 8 and not pool.holds
    pool.release(chunk)
    assert pool.free.qsize() == 8


def archive_tree(root):
    os.makedirs(os.path.join(root, "d"))
    with open(os.path.join(root, "big"), "wb") as f:
        f.write(os.urandom((3 << 20) + 77))
    for i in range(300):
        with open(os.path.join(root, "d", "f%03d" % i), "wb") as f:
            f.write(os.urandom(i * 37))
    os.link(os.path.join(root, "big"), os.path.join(root, "big-link"))
    os.symlink("big", os.path.join(root, "sym"))


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_write_archive_from_pooled_buffers(tmp_path, monkeypatch, compression):
    """Buffers are reused while a writer thread still hashes: the archive and its manifest must be exact."""
    root = str(tmp_path / "v")
    archive_tree(root)
    write_all = archive._write_all

    def slow_write(fd, pieces):  # a slow disk: the producer runs ahead as far as the pool lets it
        time.sleep(0.002)
        return write_all(fd, pieces)

    monkeypatch.setattr(archive, "_write_all", slow_write)
    pool = buffers.BufferPool(count=8, size=64 << 10)
    entries = []
    path = str(tmp_path / "a.tar")
    sha, size = archive.write_archive(tar_stream.local_tar(root, entries, True, pool=pool), path, compression, pool)
    with open(path, "rb") as f:
        data = f.read()
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert not os.path.exists(path + ".partial")
    raw = data if compression == "none" else gzip.decompress(data)
    walked = manifest.from_directory(root)
    assert manifest.digest(entries) == manifest.digest(walked) == manifest.digest(
        manifest.from_tar_stream(io.BytesIO(raw)))
    assert pool.free.qsize() == 8 and not pool.holds


def direct_io_works(path):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
    except (AttributeError, OSError):
        return False
    os.close(fd)
    os.unlink(path)
    return True


def test_local_tar_yields_whole_buffers(tmp_path):
    """Every chunk but the last is a whole pool buffer, so an archive of them can be written with O_DIRECT."""
    root = str(tmp_path / "v")
    archive_tree(root)
    pool = buffers.BufferPool(count=4, size=64 << 10)
    sizes = [len(chunk) for chunk in tar_stream.local_tar(root, [], True, pool=pool)]
    assert len(sizes) > 10 and set(sizes[:-1]) == {64 << 10} and 0 < sizes[-1] <= 64 << 10


@pytest.mark.parametrize("refuse", ["nothing", "open", "write", "halfway"])
def test_write_archive_direct_and_its_fallbacks(tmp_path, monkeypatch, refuse):
    """Direct writes where the file system takes them; buffered ones where it refuses, with the same archive."""
    root = str(tmp_path / "v")
    archive_tree(root)
    open_, write_all = os.open, archive._write_all
    modes = []

    def refusing_open(path, flags, *args, **kwargs):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return open_(path, flags, *args, **kwargs)

    def recording_write(fd, pieces):
        direct = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)
        modes.append(direct)
        if refuse == "write" and direct:
            raise OSError(errno.EINVAL, "Invalid argument")
        if refuse == "halfway" and direct and len(modes) == 3:  # a direct write that stops partway
            os.write(fd, pieces[0][:2 * archive.DIRECT_ALIGN])
            raise OSError(errno.EINVAL, "Invalid argument")
        return write_all(fd, pieces)

    if refuse == "open":
        monkeypatch.setattr(archive.os, "open", refusing_open)
    monkeypatch.setattr(archive, "_write_all", recording_write)
    pool = buffers.BufferPool(count=4, size=64 << 10)
    entries = []
    path = str(tmp_path / "a.tar")
    sha, size = archive.write_archive(tar_stream.local_tar(root, entries, True, pool=pool), path, "none", pool)
    with open(path, "rb") as f:
        data = f.read()
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert manifest.digest(entries) == manifest.digest(manifest.from_tar_stream(io.BytesIO(data)))
    assert pool.free.qsize() == 4 and not pool.holds
    if refuse == "nothing" and direct_io_works(str(tmp_path / "probe")):
        assert modes[0] and not modes[-1] and len(data) % archive.DIRECT_ALIGN  # the tail is written buffered
    elif refuse == "halfway" and direct_io_works(str(tmp_path / "probe")):
        assert modes[:3] == [True, True, True] and not any(modes[3:])
    else:
        assert not any(modes[1:])


def test_write_archive_failure_frees_the_pool(tmp_path):
    root = str(tmp_path / "v")
    archive_tree(root)
    pool = buffers.BufferPool(count=8, size=64 << 10)

    def broken():
        for i, chunk in enumerate(tar_stream.local_tar(root, [], True, pool=pool)):
            if i == 40:
                raise transfer.DockerError("source went away")
            yield chunk

    with pytest.raises(transfer.DockerError, match="source went away"):
        archive.write_archive(broken(), str(tmp_path / "a.tar"), "none", pool)
    assert not os.path.exists(str(tmp_path / "a.tar")) and not os.path.exists(str(tmp_path / "a.tar.partial"))
    assert pool.free.qsize() == 8 and not pool.holds


def test_write_archive_names_the_file_on_os_errors(tmp_path):
    with pytest.raises(transfer.DockerError, match="a.tar"):
        archive.write_archive(iter([b"x"]), str(tmp_path / "missing" / "a.tar"), "none")


def test_data_segments_of_a_sparse_file(tmp_path):
    path = tmp_path / "sparse"
    with open(path, "wb") as f:
        f.write(b"x" * 4096)
        f.seek(8 << 20)
        f.write(b"y" * 4096)
    fd = os.open(path, os.O_RDONLY)
    try:
        segments = tree_copy.data_segments(fd, os.path.getsize(path), True)
        assert tree_copy.data_segments(fd, 10, False) == [(0, 10)]
    finally:
        os.close(fd)
    assert segments[0][0] == 0 and segments[-1][1] == (8 << 20) + 4096
    assert sum(end - start for start, end in segments) < (1 << 20)


def test_copy_file_falls_back_to_a_buffer(tmp_path, monkeypatch):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(os.urandom(3 << 20))
    monkeypatch.setattr(tree_copy, "_KERNEL_COPY", [False])
    counter = [0]
    with open(str(src), "rb") as fin, open(str(dst), "wb") as out:
        tree_copy.copy_content(fin.fileno(), out.fileno(), os.stat(src), buf=bytearray(1 << 20), counter=counter)
    assert dst.read_bytes() == src.read_bytes() and counter[0] == 3 << 20


def test_sha256_meanwhile(tmp_path):
    path = str(tmp_path / "a")
    with open(path, "wb") as f:
        f.write(os.urandom(3 << 20))
    with open(path, "rb") as f:
        expected = hashlib.sha256(f.read()).hexdigest()
    with archive.sha256_meanwhile(path) as sha:
        assert sha() == expected
    with archive.sha256_meanwhile(str(tmp_path / "missing")) as sha:
        assert sha() is None
    with archive.sha256_meanwhile(path):  # left early: the thread stops and is joined
        pass
    stop = threading.Event()
    stop.set()
    assert manifest.hash_file(path, stop=stop) is None


def test_local_side_receive_names_an_unreadable_archive(tmp_path):
    side = volume_access.LocalRoot(str(tmp_path), "v")
    with pytest.raises(transfer.DockerError, match="volume 'v': the archive cannot be read as tar"):
        side.receive(iter([b"not a tar archive " * 100]))


def _volume_with_staging(tmp_path):
    root = tmp_path / "volume"
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "passwd").write_text("keep\n")
    side = volume_access.LocalRoot(str(root), "v")
    root.mkdir()
    side.reset_staging()
    return root, outside, side


def test_staging_state_is_not_written_through_a_planted_symlink(tmp_path):
    root, outside, side = _volume_with_staging(tmp_path)
    os.symlink(outside / "passwd", root / manifest.STAGING / (transfer.STATE + ".tmp"))
    os.symlink(outside / "passwd", root / manifest.STAGING / transfer.STATE)
    with pytest.raises(transfer.DockerError, match="state.tmp is a symbolic link"):
        side.set_state("verified", "sha256:x")
    assert (outside / "passwd").read_text() == "keep\n"
    assert side.state() == ("partial", None)  # the planted state is not read through the link either


def test_a_staging_directory_swapped_for_a_symlink_is_refused(tmp_path):
    root, outside, side = _volume_with_staging(tmp_path)
    (outside / "data").mkdir()
    (outside / "data" / "secret").write_text("host\n")
    side.remove_staging()
    os.symlink(outside, root / manifest.STAGING)
    with pytest.raises(transfer.DockerError, match="not a directory"):
        side.state()
    with pytest.raises(transfer.DockerError):
        side.promote(manifest.make_entry("", "dir", 0o755, 0, 0, mtime=1))
    assert not (root / "secret").exists() and (outside / "data" / "secret").exists()
    side.remove_staging()  # removes the link, not what it points at
    assert not os.path.lexists(root / manifest.STAGING) and (outside / "data" / "secret").exists()


# ---- the staging protocol with fake sides: what is resumed, and that it is verified first

def _entries(content):
    return [manifest.make_entry("", "dir", 0o755, 0, 0, mtime=1),
            manifest.make_entry("f", "file", 0o644, 0, 0, size=len(content), mtime=1,
                                sha256=hashlib.sha256(content).hexdigest())]


class FakeSource:
    name = "src"

    def __init__(self, content):
        self.entries = _entries(content)

    def manifest(self, checksum):
        return list(self.entries)


class FakeDest:
    name = "dst"
    how = "fake"

    def __init__(self, staged=None, visible=None):
        self.staged = staged
        self.visible = visible
        self.log = []

    def receive(self, chunks):
        self.log.append("copy")
        self.staged = self.source.entries

    def fix_times(self, entries):
        pass

    def staged_manifest(self, checksum):
        return list(self.staged)

    def manifest(self, checksum):
        return list(self.visible)

    def finish(self, state, root):
        self.log.append(("finish",) + tuple(state))
        self.visible = self.staged


def _staged_copy(source, dest, state, monkeypatch):
    dest.source = source
    monkeypatch.setattr(transfer, "copy_into", lambda s, d, c, n: (d.receive(None), list(s.entries))[1])
    return transfer.staged_copy(source, dest, "checksum", state)


def _digest(entries):
    return manifest.digest(manifest.at_level(entries, "checksum"))


def test_staged_copy_resumes_a_verified_copy_of_this_source(monkeypatch):
    source = FakeSource(b"new")
    dest = FakeDest(staged=_entries(b"new"))
    out = _staged_copy(source, dest, ("verified", _digest(source.entries)), monkeypatch)
    assert dest.log == [("finish", "verified", _digest(source.entries))] and not out["copied"]


def test_staged_copy_restages_a_verified_copy_that_does_not_match(monkeypatch):
    source = FakeSource(b"new")
    dest = FakeDest(staged=_entries(b"tampered"))
    out = _staged_copy(source, dest, ("verified", _digest(source.entries)), monkeypatch)
    assert dest.log == ["copy", ("finish", "new", _digest(source.entries))] and out["copied"]


@pytest.mark.parametrize("word", ["verified", "moving"])
def test_staged_copy_never_promotes_a_staged_copy_of_other_data(monkeypatch, word):
    source = FakeSource(b"new")
    dest = FakeDest(staged=_entries(b"old"))
    with pytest.raises(transfer.DockerError, match="staged copy of other data"):
        _staged_copy(source, dest, (word, _digest(_entries(b"old"))), monkeypatch)
    assert dest.log == []


def test_staged_copy_verifies_a_resumed_move_into_place(monkeypatch):
    source = FakeSource(b"new")
    dest = FakeDest(staged=_entries(b"damaged"))
    with pytest.raises(transfer.DockerError, match="does not match"):
        _staged_copy(source, dest, ("moving", _digest(source.entries)), monkeypatch)
    dest = FakeDest(staged=_entries(b"new"))
    _staged_copy(source, dest, ("moving", _digest(source.entries)), monkeypatch)
    assert dest.log == [("finish", "moving", _digest(source.entries))]


@pytest.mark.parametrize("state", [None, ("partial", None)])
def test_staged_copy_starts_afresh_without_a_resumable_state(monkeypatch, state):
    source = FakeSource(b"new")
    dest = FakeDest(staged=_entries(b"old"))
    _staged_copy(source, dest, state, monkeypatch)
    assert dest.log == ["copy", ("finish", "new", _digest(source.entries))]


# ---- helper containers through the Engine API: no socket wait without a bound

class _HelperApi:
    """The Engine API of a helper container that takes PUT /containers/{id}/archive as the SDK sends it."""

    timeout = 7

    def __init__(self, fail=None, status_error=None, gone=False, staging_exists=False):
        self.fail, self.status_error, self.gone = fail, status_error, gone
        self.staging_exists = staging_exists
        self.put = None
        self.puts = []
        self.sent = []
        self.created = []
        self.removed = []

    def inspect_image(self, image):
        return {}

    def create_host_config(self, **kwargs):
        return kwargs

    def create_container(self, image, command, **kwargs):
        self.created.append((command, kwargs["labels"]))
        return {"Id": "helper"}

    def start(self, cid):
        pass

    def wait(self, cid, timeout=None):
        return {"StatusCode": 0}

    def logs(self, cid, **kwargs):
        return b""

    def _url(self, path, *args):
        return path.format(*args)

    def head(self, url, params=None, timeout=None):
        class Response:
            status_code = 200 if self.staging_exists else 404
        return Response()

    def _put(self, url, params=None, data=None, timeout=None):
        self.put = dict(url=url, params=params, timeout=timeout, body=type(data).__name__)
        self.puts.append(self.put)
        if params["path"] == volume_access.HELPER_MOUNT:  # the staging directories
            return b"".join(data)
        self.sent = []
        for chunk in data:
            if self.fail is not None:
                raise self.fail
            self.sent.append(chunk)
        return 200

    def _raise_for_status(self, res):
        if self.status_error is not None and res == 200:
            raise self.status_error

    def inspect_container(self, cid):
        if self.gone:
            from docker.errors import NotFound

            raise NotFound("No such container: %s" % cid)
        return {"State": {"Running": False}}

    def remove_container(self, cid, force=False):
        self.removed.append(cid)


def test_api_side_streams_the_archive_with_a_timeout():
    api = _HelperApi()
    produced = []

    def chunks():
        for chunk in (b"x" * 10, b"y" * 5):
            produced.append(chunk)
            assert api.sent == produced[:-1]  # the previous chunk is sent before this one is read
            yield chunk

    volume_access.ApiRoot(api, "data", "busybox:latest").receive(chunks())
    data = "%s/%s/%s" % (volume_access.HELPER_MOUNT, manifest.STAGING, transfer.DATA)
    assert api.put == dict(url="/containers/helper/archive", params={"path": data, "noOverwriteDirNonDir": "true"},
                           timeout=7, body="generator")
    assert api.sent == [b"x" * 10, b"y" * 5]
    # the staging directories go in as a tar before the archive, to the same helper, which never runs
    assert [put["params"]["path"] for put in api.puts] == [volume_access.HELPER_MOUNT, data]
    assert api.created == [(["true"], {volume_access.HELPER_LABEL: "receive"})]
    assert api.removed == ["helper"]


def test_api_side_removes_a_leftover_staging_directory_first():
    api = _HelperApi(staging_exists=True)
    volume_access.ApiRoot(api, "data", "busybox:latest").receive(iter([b"x"]))
    assert api.created[0] == (["true"], {volume_access.HELPER_LABEL: "receive"})
    assert "rm -rf %s/%s" % (volume_access.HELPER_MOUNT, manifest.STAGING) in api.created[1][0][-1]
    assert api.sent == [b"x"]


def test_the_staging_directories_tar_is_private_and_in_order():
    import io
    import tarfile

    data = b"".join(volume_access._directories_tar("s", "s/d"))
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert [(m.name, m.isdir(), m.mode, m.uid) for m in archive] == [("s", True, 0o700, 0), ("s/d", True, 0o700, 0)]


def _errors():
    from docker.errors import APIError, NotFound
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import ReadTimeout

    return [
        (dict(fail=ReadTimeout("UnixHTTPConnectionPool(host='localhost', port=None): Read timed out. "
                               "(read timeout=7)")),
         "lost the helper container while writing (no answer for 7 seconds)"),
        (dict(fail=RequestsConnectionError("('Connection aborted.', BrokenPipeError(32, 'Broken pipe'))")),
         "writing failed: lost the connection to the Docker daemon"),
        (dict(status_error=APIError("500 Server Error", explanation="write /x: no space left on device")),
         "writing failed: the Docker daemon refused the request: write /x: no space left on device"),
        (dict(status_error=NotFound("404 Client Error", explanation="Could not find the file /x in container")),
         "the directory the copy goes into is gone while writing"),
        (dict(status_error=APIError("404 Client Error", explanation="No such container: helper"), gone=True),
         "lost the helper container while writing (it was removed)"),
    ]


@pytest.mark.parametrize("kwargs,cause", _errors())
def test_api_side_names_the_volume_when_its_write_fails(kwargs, cause):
    api = _HelperApi(**kwargs)
    with pytest.raises(transfer.DockerError) as info:
        volume_access.ApiRoot(api, "data", "busybox:latest").receive(iter([b"x"]))
    assert str(info.value).startswith("volume 'data' on the engine (through the Engine API): " + cause)
    assert str(info.value).endswith("; the run stopped, fix the cause and run again")
    assert api.removed == ["helper"]


def test_api_side_does_not_blame_the_helper_for_the_source():
    def chunks():
        yield b"x"
        raise OSError(5, "Input/output error")

    api = _HelperApi()
    with pytest.raises(OSError, match="Input/output error"):
        volume_access.ApiRoot(api, "data", "busybox:latest").receive(chunks())
    assert api.sent == [b"x"] and api.removed == ["helper"]


def test_api_side_stops_reading_the_source_when_the_engine_answers_early():
    closed = []

    def chunks():
        try:
            yield b"x"
            yield b"y"
        finally:
            closed.append(True)

    from docker.errors import APIError

    api = _HelperApi(status_error=APIError("400", explanation="cannot overwrite directory"))
    # reads one chunk, answers (the staging directories' PUT goes through)
    api._put = lambda url, params=None, data=None, timeout=None: (
        next(data), 201 if params["path"] == volume_access.HELPER_MOUNT else 200)[1]
    with pytest.raises(transfer.DockerError, match="cannot overwrite directory"):
        volume_access.ApiRoot(api, "data", "busybox:latest").receive(chunks())
    assert closed == [True]


def test_api_side_sets_what_the_engine_leaves_out():
    api = _HelperApi()
    entries = [dict(path="", type="dir", mode=0o750, uid=1, gid=2, mtime=0),
               dict(path="sp ace/f", type="file", mode=0o2750, uid=3, gid=4, mtime=0, size=0),
               dict(path="plain", type="file", mode=0o644, uid=3, gid=4, mtime=0, size=0)]
    volume_access.ApiRoot(api, "data", "busybox:latest").fix_times(entries)
    staging = "%s/%s" % (volume_access.HELPER_MOUNT, manifest.STAGING)
    assert api.put["params"]["path"] == staging
    with tarfile.open(fileobj=io.BytesIO(b"".join(api.sent)), mode="r:") as sent:
        [member] = sent.getmembers()
        script = sent.extractfile(member).read().decode()
    assert member.name == volume_access.FIX_SCRIPT
    assert script.splitlines()[2:] == ["chmod 2750 -- 'sp ace/f'"]
    assert api.created[-1][0][-1] == "sh %s/%s && rm -f %s/%s" % ((staging, volume_access.FIX_SCRIPT) * 2)


def test_api_side_runs_no_helper_when_the_engine_left_nothing_out():
    api = _HelperApi()
    entries = [dict(path="", type="dir", mode=0o750, uid=1, gid=2, mtime=0),
               dict(path="plain", type="file", mode=0o755, uid=3, gid=4, mtime=0, size=0)]
    volume_access.ApiRoot(api, "data", "busybox:latest").fix_times(entries)
    assert api.created == [] and api.puts == []


def test_the_staged_roots_owner_and_mode_are_not_compared():
    """finish() gives the volume's root the source root's owner and mode; the staged root is never used."""
    source = [dict(path="", type="dir", mode=0o750, uid=1, gid=2),
              dict(path="f", type="file", mode=0o644, uid=3, gid=4, mtime=0, size=1, sha256="a")]
    staged = [dict(source[0], mode=0o700, uid=0, gid=0), source[1]]
    assert transfer._staged_differ(source, staged, "checksum") == []
    assert transfer._staged_differ(source, [staged[0], dict(source[1], uid=0)], "checksum") != []
    assert transfer._staged_differ(source, [dict(staged[0], type="file"), source[1]], "checksum") != []


def test_local_copy_is_on_disk_before_it_is_marked_verified(tmp_path, monkeypatch):
    """The step after 'verified' removes the old data: the new copy must be durable first."""
    root, _outside, side = _volume_with_staging(tmp_path)
    (root / "old").write_text("old\n")
    done = []
    monkeypatch.setattr(volume_access.atomic, "sync_file_system", lambda fd: done.append(("sync", os.fstat(fd).st_ino)))
    set_state = side.set_state
    monkeypatch.setattr(side, "set_state", lambda word, digest: (done.append(word), set_state(word, digest)))
    side.finish(("new", "sha256:x"), dict(path="", type="dir", mode=0o755, uid=0, gid=0))
    assert done == [("sync", os.stat(str(root)).st_ino), "verified", "moving"]
    assert not (root / "old").exists()
