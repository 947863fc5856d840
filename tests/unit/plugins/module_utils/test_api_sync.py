"""The pure parts of the incremental copy through the Engine API (api_sync.py): which directories are read
whole, the renaming of tar members, and a stream that breaks inside a member."""

import hashlib
import io
import subprocess
import tarfile

import pytest

from ansible_collections.persist.docker.plugins.module_utils import api_sync, resync, volume_access
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
                                    lambda n: "top/" + n[2:] if n[2:] in wanted else None,
                                    lambda path, sha: done.append((path, sha))))
    assert names_and_contents(out + bytes(1024)) == [("top/d/a", "", b"abc"), ("top/d/b", "top/d/a", None),
                                                     ("top/d/new\nline", "", b"z")]
    assert done == [("top/d/a", hashlib.sha256(b"abc").hexdigest()), ("top/d/b", None),
                    ("top/d/new\nline", hashlib.sha256(b"z").hexdigest())]


def test_forward_a_broken_stream_ends_the_member_with_zeros():
    data = tar_of([("./a", tarfile.REGTYPE, b"first", ""), ("./b", tarfile.REGTYPE, b"y" * 5000, "")])
    done = []
    out = []
    with pytest.raises(api_sync.Broken):
        out.extend(api_sync.forward([data[:512 * 4]], lambda n: n[2:], lambda path, _sha: done.append(path)))
    sent = names_and_contents(b"".join(out) + bytes(1024))
    assert done == ["a"] and sent[0] == ("a", "", b"first") and sent[1][0] == "b" and len(sent[1][2]) == 5000


USERNS = volume_access.userns_ids([(0, 100000, 65536)], [(0, 100000, 65536)])


def test_forward_maps_the_owners_of_a_remapped_engine_and_names_an_unmapped_one():
    def member(name, uid):
        info = tarfile.TarInfo(name)
        info.size, info.uid, info.gid = 1, uid, uid
        return info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(member("./a", 100000), io.BytesIO(b"a"))
        tar.addfile(member("./b", 101000), io.BytesIO(b"b"))
        tar.addfile(member("./c", 7), io.BytesIO(b"c"))
    out, done = [], []
    with pytest.raises(api_sync.Unmapped, match="'c': an entry owned by host ids 7:7 lies outside"):
        out.extend(api_sync.forward([buf.getvalue()], lambda n: n[2:], lambda path, _sha: done.append(path),
                                    ids=USERNS))
    with tarfile.open(fileobj=io.BytesIO(b"".join(out) + bytes(1024)), mode="r:") as tar:
        assert [(m.name, m.uid, m.gid) for m in tar] == [("a", 0, 0), ("b", 1000, 1000)]
    assert done == ["a", "b"]


def test_a_listing_in_the_containers_view():
    host = {"": resync.Meta("dir", 0o755, 100000, 100000, 0, 0, 1, 0, 2, 0),
            "f": resync.Meta("file", 0o644, 101000, 100005, 3, 0, 2, 0, 1, 0)}
    out = api_sync.in_view(host, USERNS)
    assert (out[""].uid, out[""].gid, out["f"].uid, out["f"].gid) == (0, 0, 1000, 5)
    assert out["f"]._replace(uid=101000, gid=100005) == host["f"]
    with pytest.raises(api_sync.Unmapped, match="'f': an entry owned by host ids 0:100005"):
        api_sync.in_view(dict(host, f=host["f"]._replace(uid=0)), USERNS)
    with pytest.raises(api_sync.Unmapped, match="'.': an entry owned by host ids 5:100000"):
        api_sync.in_view({"": host[""]._replace(uid=5)}, USERNS)


def listed_meta(kind, ino, size=0, mode=0o644, nlink=1, target=None, ctime=7):
    return resync.Meta(kind, mode, 0, 0, size, 9 * 10 ** 9, ino, ctime, nlink, 0, target)


def test_the_source_manifest_from_the_last_listing_and_the_digests_sent():
    listed = {"": listed_meta("dir", 1, mode=0o755), "a": listed_meta("file", 2, 3, nlink=2),
              "b": listed_meta("file", 2, 3, nlink=2), "s": listed_meta("symlink", 3, 1, mode=0o777, target="a"),
              "e": listed_meta("file", 4, 0)}
    sha = hashlib.sha256(b"abc").hexdigest()
    empty = hashlib.sha256(b"").hexdigest()
    hashes = {"a": (resync.key(listed["a"]), sha), "e": (resync.key(listed["e"]), empty)}
    entries = dict((e["path"], e) for e in api_sync.source_entries(listed, hashes, True))
    assert entries["a"]["sha256"] == entries["b"]["sha256"] == sha and entries["b"]["hardlink"] == "a"
    assert entries["s"] == {"path": "s", "type": "symlink", "mode": 0o777, "uid": 0, "gid": 0, "mtime": 9,
                            "target": "a"}
    assert "mtime" not in entries[""] and entries["e"]["sha256"] == empty
    # a digest of content sent before the file changed (another ctime) is not used: the source is read again
    changed = dict(listed, e=listed_meta("file", 4, 0, ctime=8))
    assert api_sync.source_entries(changed, hashes, True) is None
    assert api_sync.source_entries(changed, hashes, False) is not None  # sizes only
    assert api_sync.source_entries(dict(listed, s=listed_meta("symlink", 3, 1)), hashes, True) is None


def test_one_batch_reads_files_once_per_inode_within_the_limit():
    todo = {"a": listed_meta("file", 2, 100, nlink=2), "b": listed_meta("file", 2, 100, nlink=2),
            "big": listed_meta("file", 5, 1000), "c": listed_meta("file", 6, 50), "s": listed_meta("symlink", 7, 1),
            "p": listed_meta("fifo", 8), "d": listed_meta("dir", 9)}
    made = ["a", "b", "big", "c", "d", "p", "s", "gone"]
    assert api_sync.batched(todo, made, 200) == ["a", "c"]  # b: a link to a; big: over the limit; s: from the listing
    assert api_sync.batched(todo, made, 10 ** 6) == ["a", "big", "c"]


def test_a_symbolic_link_comes_from_the_listing_with_its_mtime():
    meta = resync.Meta("symlink", 0o777, 5, 6, 9, 1234 * 10 ** 9 + 5, 3, 0, 1, 0, "new\ntarget")
    with tarfile.open(fileobj=io.BytesIO(api_sync.symlink_header("d/l", meta) + bytes(1024))) as tar:
        got = tar.next()
    assert got.issym() and (got.name, got.linkname) == ("d/l", "new\ntarget")
    assert got.mtime == 1234 and (got.uid, got.gid, got.mode) == (5, 6, 0o777)


class FakeDest:
    mount = "/mnt"

    def __init__(self):
        self.full_reads = 0

    def staged_manifest(self, _checksum):
        self.full_reads += 1
        return "read whole"


def test_the_staged_copy_is_checked_by_its_listing_and_the_digests_sent_while_its_files_are_unchanged():
    dest = FakeDest()
    sync = api_sync.ApiSync(source=None, dest=dest)
    root, a = listed_meta("dir", 1), listed_meta("file", 2, 3)
    staged = {"": root, "a": a, "gone": listed_meta("file", 3, 1)}
    sync.listing = lambda side, where, final: (staged if side is dest and where == "/mnt/%s/data" % STAGING
                                               and final else None)
    sync.sent = {"a": hashlib.sha256(b"abc").hexdigest(), "vanished": "0" * 64}
    assert sync.staged_listing() is staged
    assert sync.sent == {} and sync.staged_hashes == {"a": (resync.key(a), hashlib.sha256(b"abc").hexdigest())}
    # after the last pass: the source's manifest from its listing, the staged tree's from the listing above
    sync.listed, sync.hashes = {"": root, "a": a}, dict(sync.staged_hashes)
    sync.staged = {"": root, "a": a}
    source, staged_entries, _stats = sync.manifests()
    assert staged_entries == source and dest.full_reads == 0
    assert [e["path"] for e in staged_entries] == ["", "a"] and staged_entries[1]["sha256"] == sync.hashes["a"][1]
    # a staged file whose stat key is not the one listed after it was written: the staged copy is read whole
    sync.staged = {"": root, "a": a._replace(ctime_ns=a.ctime_ns + 1)}
    assert sync.manifests()[1] == "read whole" and dest.full_reads == 1


def test_a_lenient_listing_leaves_out_the_entries_of_owners_outside_the_namespace():
    host = {"": resync.Meta("dir", 0o755, 100000, 100000, 0, 0, 1, 0, 2, 0),
            "foreign": resync.Meta("file", 0o644, 7, 7, 1, 0, 2, 0, 1, 0)}
    assert set(api_sync.in_view(host, USERNS, lenient=True)) == {""}


def sum_line(name, data):
    return hashlib.sha256(data).hexdigest().encode() + b"  ./" + name + b"\n"


def test_sums_are_read_in_the_order_of_the_names_any_name_included():
    files = b"./a\0./new\nline\0./caf\xe9\0"
    sums = sum_line(b"a", b"1") + sum_line(b"new\nline", b"2") + sum_line(b"caf\xe9", b"3")
    expected = {"a": hashlib.sha256(b"1").hexdigest(), "new\nline": hashlib.sha256(b"2").hexdigest(),
                "caf\udce9": hashlib.sha256(b"3").hexdigest()}
    assert api_sync.parse_sums(files, sums, b"0\n") == expected


def test_sums_count_only_when_every_file_was_read_so_that_no_name_passes_for_another():
    # "a" could not be read: the next name is made to look like a line of "a" followed by that of "b"
    forged = b"a\n" + b"0" * 64 + b"  ./b"
    files = b"./a\0./" + forged + b"\0./b\0"
    sums = sum_line(forged, b"x") + sum_line(b"b", b"y")
    assert api_sync.parse_sums(files, sums, b"123\n") == {}
    # every file read: each line is read at its place
    whole = b"./" + forged + b"\0./b\0"
    expected = {forged.decode(): hashlib.sha256(b"x").hexdigest(), "b": hashlib.sha256(b"y").hexdigest()}
    assert api_sync.parse_sums(whole, sums, b"0\n") == expected
    assert api_sync.parse_sums(b"./a\0./b\0", sum_line(b"a", b"1") + b"garbage\n", b"0") == {
        "a": hashlib.sha256(b"1").hexdigest()}


def test_known_digests_count_while_the_stat_key_is_the_known_one():
    listing = {"": listed_meta("dir", 1), "a": listed_meta("file", 2, 3), "b": listed_meta("file", 3, 4, ctime=9),
               "l": listed_meta("symlink", 4, 1, target="a")}
    known = {"a": resync.key(listing["a"]) + ("sha-a",), "b": resync.key(listing["b"])[:3] + (8, "sha-b"),
             "l": resync.key(listing["l"]) + ("sha-l",), "gone": (9, 9, 9, 9, "sha-gone")}
    assert api_sync.known_digests(listing, known) == {"a": "sha-a"}  # b: its ctime changed; l: not a file
    # a hard link this run just made of a file found unchanged: its ctime changed by the link only
    assert api_sync.known_digests(listing, known, ctime=False) == {"a": "sha-a", "b": "sha-b"}
    assert api_sync.as_known(listing, {"a": "x", "l": "y", "gone": "z"}) == {"a": resync.key(listing["a"]) + ("x",)}


def test_the_link_script_makes_the_directories_then_links_each_directory_s_files(tmp_path):
    root = tmp_path / "vol"
    for path, data in (("top", b"1"), ("d/a", b"2"), ("d/-n", b"3"), ("d/e/new\nline", b"4"), ("d/x y'z", b"5")):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    (root / STAGING / "data").mkdir(parents=True)
    paths = ["top", "d/a", "d/-n", "d/e/new\nline", "d/x y'z"]
    script = api_sync.link_script(str(root), paths, per_command=2)
    assert script.count(b"\nln -- ") == 4  # d: 3 files in two commands; d/e; the root
    subprocess.run(["sh", "-c", script.decode()], check=True)
    for path in paths:
        assert (root / STAGING / "data" / path).stat().st_ino == (root / path).stat().st_ino


def test_commands_quote_every_path_so_that_none_is_an_option(tmp_path):
    paths = ["-rf", "a b", "it's", "new\nline"] + ["f%d" % i for i in range(5)]
    lines = api_sync.commands("printf '%s\\0'", paths, per_command=4)
    assert len(lines) == 3
    out = subprocess.run(["sh", "-c", "\n".join(lines)], cwd=str(tmp_path), check=True, capture_output=True).stdout
    assert out.split(b"\0")[:-1] == [b"./" + p.encode() for p in paths]
