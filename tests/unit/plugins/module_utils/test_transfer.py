"""Pure decisions of the transfer: the relocation plan, staging state, archives."""

import os

import pytest

from ansible_collections.persist.docker.plugins.module_utils import transfer


def plan(source=True, dest=True, staging=None, in_sync=False, empty=True, mode="copy", force=False):
    return transfer.plan_relocation(source, dest, staging=staging, in_sync=in_sync, dest_empty=empty,
                                    mode=mode, force=force)[0]


@pytest.mark.parametrize("kwargs,action", [
    (dict(dest=False), "copy"),
    (dict(), "copy"),
    (dict(in_sync=True, empty=False), "none"),
    (dict(in_sync=True, empty=False, mode="move"), "remove-source"),
    (dict(empty=False), "fail"),
    (dict(empty=False, force=True), "copy"),
    (dict(staging=("partial", None), empty=False), "resume"),
    (dict(staging=("moving", "sha256:x"), empty=False), "resume"),
    (dict(source=False), "fail"),
    (dict(source=False, mode="move", empty=False), "none"),
    (dict(source=False, mode="move", staging=("partial", None)), "fail"),
])
def test_plan_relocation(kwargs, action):
    assert plan(**kwargs) == action


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
    assert transfer.pick_compression(path, option) == expected


def test_gzip_round_trip():
    comp = transfer.compressor("gzip")
    data = [bytes([i % 256]) * 100000 for i in range(20)]
    packed = b"".join(comp.compress(d) for d in data) + comp.flush()
    assert b"".join(transfer.decompressed([packed[i:i + 999] for i in range(0, len(packed), 999)], "gzip")) \
        == b"".join(data)


def test_userns_ids():
    assert transfer.userns_ids(None, None) is None
    ids = transfer.userns_ids([(0, 100000, 65536)], [(0, 100000, 65536)])
    assert ids(100033, 100034) == (33, 34)
    back = transfer.host_ids([(0, 100000, 65536)], [(0, 100000, 65536)])
    assert back(33, 34) == (100033, 100034)


def test_chunk_reader_rest():
    reader = transfer.ChunkReader([b"abc", b"def", b"gh"])
    assert reader.read(2) == b"ab"
    assert b"".join(reader.rest()) == b"cdefgh"


def test_batched_joins_small_chunks():
    chunks = [b"a" * 10] * 25 + [b"b" * 300, b"c"]
    out = list(transfer.batched(chunks, size=100))
    assert b"".join(out) == b"".join(chunks)
    assert all(len(piece) >= 100 for piece in out[:-1])


def test_data_segments_of_a_sparse_file(tmp_path):
    path = tmp_path / "sparse"
    with open(path, "wb") as f:
        f.write(b"x" * 4096)
        f.seek(8 << 20)
        f.write(b"y" * 4096)
    fd = os.open(path, os.O_RDONLY)
    try:
        segments = transfer.data_segments(fd, os.path.getsize(path), True)
        assert transfer.data_segments(fd, 10, False) == [(0, 10)]
    finally:
        os.close(fd)
    assert segments[0][0] == 0 and segments[-1][1] == (8 << 20) + 4096
    assert sum(end - start for start, end in segments) < (1 << 20)


def test_copy_file_falls_back_to_a_buffer(tmp_path, monkeypatch):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(os.urandom(3 << 20))
    monkeypatch.setattr(transfer, "_KERNEL_COPY", [False])
    counter = [0]
    transfer.copy_file(str(src), str(dst), os.stat(src), buf=bytearray(1 << 20), counter=counter)
    assert dst.read_bytes() == src.read_bytes() and counter[0] == 3 << 20
