"""The pure parts of the incremental copy through the Engine API (api_sync.py): which directories are read
whole, the renaming of tar members, and a stream that breaks inside a member."""

import io
import tarfile

import pytest

from ansible_collections.persist.docker.plugins.module_utils import api_sync, resync
from ansible_collections.persist.docker.plugins.module_utils.manifest import STAGING

DIR = resync.Meta("dir", 0o755, 0, 0, 0, 0, 1, 0, 2, 0)


def file_of(size):
    return resync.Meta("file", 0o644, 0, 0, size, 1_500_000_000_123_456_789, 2, 0, 1, 0)


SOURCE = {"": DIR, "w": DIR, "a": DIR, "a/x": file_of(10 << 20), "a/y": file_of(10), "w/1": file_of(10),
          "w/2": file_of(10), "w/3": file_of(10), "b": file_of(5)}


@pytest.mark.parametrize("wanted,expected", [
    ({"w/1", "w/2", "a/y"}, ["w"]),  # w is cheaper whole; a's big file is not wanted
    ({"w/1", "w/2", "w/3", "a/x", "a/y", "b"}, [""]),  # everything: the root in one read
    ({"b"}, []),  # one file: read alone
    (set(), []),
])
def test_plan_reads(wanted, expected):
    assert api_sync.plan_reads(SOURCE, wanted, 1 << 20) == expected


@pytest.mark.parametrize("name,expected", [
    ("./a/b", "a/b"), ("a/b/", "a/b"), (".", None), ("./", None), ("./" + STAGING, None),
    ("./" + STAGING + "/data/x", None), ("./" + STAGING + "x", STAGING + "x"),
])
def test_relative(name, expected):
    assert api_sync.relative(name, "") == expected


def test_whole_seconds():
    out = api_sync.whole_seconds({"a": file_of(1)})
    assert out["a"].mtime_ns == 1_500_000_000 * 10 ** 9 and out["a"].ctime_ns == 0


def tar_of(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            if kind == tarfile.REGTYPE:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def names_and_contents(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return [(m.name, m.linkname, tar.extractfile(m).read() if m.isreg() else None) for m in tar]


def test_forward_renames_and_keeps_links_to_members_sent():
    data = tar_of([("./d", tarfile.DIRTYPE, b"", ""), ("./d/a", tarfile.REGTYPE, b"abc", ""),
                   ("./d/b", tarfile.LNKTYPE, b"", "./d/a"), ("./d/skip", tarfile.REGTYPE, b"x" * 700, ""),
                   ("./d/c", tarfile.LNKTYPE, b"", "./d/skip"), ("./d/new\nline", tarfile.REGTYPE, b"z", "")])
    done = []
    wanted = {"d/a", "d/b", "d/c", "d/new\nline"}
    out = b"".join(api_sync.forward([data[i:i + 1000] for i in range(0, len(data), 1000)],
                                    lambda n: "top/" + n[2:] if n[2:] in wanted else None, done.append))
    assert names_and_contents(out + bytes(1024)) == [("top/d/a", "", b"abc"), ("top/d/b", "top/d/a", None),
                                                     ("top/d/new\nline", "", b"z")]
    assert done == ["top/d/a", "top/d/b", "top/d/new\nline"]


def test_forward_a_broken_stream_ends_the_member_with_zeros():
    data = tar_of([("./a", tarfile.REGTYPE, b"first", ""), ("./b", tarfile.REGTYPE, b"y" * 5000, "")])
    done = []
    out = []
    with pytest.raises(api_sync.Broken):
        out.extend(api_sync.forward([data[:512 * 4]], lambda n: n[2:], done.append))
    sent = names_and_contents(b"".join(out) + bytes(1024))
    assert done == ["a"] and sent[0] == ("a", "", b"first") and sent[1][0] == "b" and len(sent[1][2]) == 5000
