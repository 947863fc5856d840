"""The decisions of an incremental copy (resync.py) and the record of the last copy (sync_record.py)."""

import os

import pytest

from ansible_collections.persist.docker.plugins.module_utils import resync, sync_record, tree_sync


def meta(kind="file", size=10, mtime=1, ino=1, ctime=1, nlink=1, mode=0o644, uid=0, gid=0):
    return resync.Meta(kind, mode, uid, gid, size, mtime, ino, ctime, nlink, 0)


ROOT = meta("dir", 0, ino=100)


def test_first_pass_makes_everything():
    source = {"": ROOT, "d": meta("dir", 0, ino=2), "d/a": meta(ino=3, size=5), "b": meta(ino=4, size=7)}
    delta = resync.plan_delta(source, {"": ROOT}, {})
    assert delta.make == ["d", "d/a", "b"] and delta.remove == [] and delta.bytes == 12
    assert delta.dirs == ["", "d"]


def test_kept_only_when_the_source_key_and_the_look_are_the_same():
    src = meta(ino=3)
    record = {"a": resync.key(src)}
    assert resync.plan_delta({"": ROOT, "a": src}, {"": ROOT, "a": meta(ino=99)}, record).keep == ["a"]
    # the source changed in place: same size and mtime, a new ctime
    changed = src._replace(ctime_ns=2)
    delta = resync.plan_delta({"": ROOT, "a": changed}, {"": ROOT, "a": meta(ino=99)}, record)
    assert delta.remove == ["a"] and delta.make == ["a"] and delta.bytes == 10
    # the target was changed: another size
    delta = resync.plan_delta({"": ROOT, "a": src}, {"": ROOT, "a": meta(ino=99, size=11)}, record)
    assert delta.make == ["a"]


def test_deleted_at_the_source_is_removed_with_its_tree():
    target = {"": ROOT, "x": meta("dir", 0, ino=5), "x/y": meta(ino=6), "z": meta(ino=7)}
    delta = resync.plan_delta({"": ROOT}, target, {})
    assert delta.remove == ["x", "z"] and delta.make == []


def test_kind_change_removes_then_makes():
    delta = resync.plan_delta({"": ROOT, "a": meta("dir", 0, ino=2)}, {"": ROOT, "a": meta(ino=3)}, {})
    assert delta.remove == ["a"] and delta.make == ["a"]


def test_hard_link_groups_kept_whole_or_made_whole():
    a, b = meta(ino=9, nlink=2, size=100), meta(ino=9, nlink=2, size=100)
    source = {"": ROOT, "a": a, "b": b}
    record = {"a": resync.key(a), "b": resync.key(b)}
    whole = {"": ROOT, "a": meta(ino=50, nlink=2, size=100), "b": meta(ino=50, nlink=2, size=100)}
    assert resync.plan_delta(source, whole, record).keep == ["a", "b"]
    split = {"": ROOT, "a": meta(ino=50, size=100), "b": meta(ino=51, size=100)}
    delta = resync.plan_delta(source, split, record)
    assert delta.make == ["a", "b"] and delta.bytes == 100  # the second member is a link


def test_seedable_by_look_only_single_links():
    source = {"": ROOT, "a": meta(ino=1), "b": meta(ino=2, size=3), "c": meta(ino=3)}
    visible = {"": ROOT, "a": meta(ino=11), "b": meta(ino=12, size=4), "c": meta(ino=13, nlink=2)}
    assert resync.seedable(source, visible) == {"a": resync.key(source["a"])}


@pytest.mark.parametrize("passes,expected", [
    ([], True), ([100], True), ([100, 50], True), ([100, 10], False), ([100, 50, 60], False),
    ([100, 90, 80, 70, 60], False),
])
def test_next_pass(passes, expected):
    assert resync.next_pass(passes, 5, 10) is expected


def test_parse_listing_odd_names_and_vanished_entries():
    line = b"%d %d %s 0 0 1 0 0 2024-01-31 12:00:00.123456789 +0100 2024-01-31 12:00:01.000000005 +0000 "
    names = b".\0./a\nb\0./gone\0./l\0./\xff\0"
    stats = (line % (1, 4096, b"41ed") + b".\n" + line % (2, 3, b"81a4") + b"./a\nb\n"
             + line % (3, 6, b"a1ff") + b"'./l' -> 'x\ny' z'\n" + line % (4, 1, b"81a4") + b"./\xff\n")
    out = resync.parse_listing(names, stats)
    assert sorted(out) == ["", "a\nb", "l", "\udcff"]
    assert out["a\nb"].size == 3 and out["a\nb"].kind == "file"
    assert out["a\nb"].mtime_ns == 1706698800 * 10 ** 9 + 123456789  # 12:00 at +0100 is 11:00 UTC
    assert out["a\nb"].ctime_ns == 1706702401 * 10 ** 9 + 5
    assert out["l"].kind == "symlink" and out["l"].size == 6 and out["l"].target == "x\ny' z"
    assert out["a\nb"].target is None


def test_parse_listing_lines_out_of_order():
    """busybox stat may write a symbolic link's line before the lines of the names given before it."""
    line = b"%d %d %s 0 0 1 0 0 2024-01-31 12:00:00.000000000 +0000 2024-01-31 12:00:00.000000000 +0000 "
    names = b".\0./a\0./l\0./b\nc\0./m\0"
    stats = (line % (1, 4096, b"41ed") + b".\n" + line % (3, 1, b"a1ff") + b"'./l' -> 'x'\n"
             + line % (2, 3, b"81a4") + b"./a\n" + line % (5, 1, b"a1ff") + b"'./m' -> 'y'\n"
             + line % (4, 3, b"81a4") + b"./b\nc\n")
    out = resync.parse_listing(names, stats)
    assert sorted(out) == ["", "a", "b\nc", "l", "m"]
    assert [out[p].ino for p in ("", "a", "l", "b\nc", "m")] == [1, 2, 3, 4, 5]
    assert (out["l"].target, out["m"].target) == ("x", "y")


def test_earlier_copy_needs_the_same_source_and_unchanged_data():
    entries = [{"path": "", "type": "dir", "mode": 0o755, "uid": 0, "gid": 0},
               {"path": "a", "type": "file", "mode": 0o644, "uid": 0, "gid": 0, "size": 1, "mtime": 1, "sha256": "x"}]
    doc = {"copy_of": dict(sync_record.digests(entries), source=["engine", "vol"])}
    assert sync_record.earlier_copy(doc, ["engine", "vol"], entries, "checksum")
    assert not sync_record.earlier_copy(doc, ["engine", "other"], entries, "checksum")
    changed = [entries[0], dict(entries[1], sha256="y")]
    assert not sync_record.earlier_copy(doc, ["engine", "vol"], changed, "checksum")
    assert sync_record.earlier_copy(doc, ["engine", "vol"], changed, "size")
    assert not sync_record.earlier_copy({}, ["engine", "vol"], entries, "size")


def test_record_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("PERSIST_DOCKER_STATE_DIR", str(tmp_path))
    path = sync_record.path_of("volume-x.json")
    sync_record.save(path, {"a\udcff": [1, 2, 3, 4, "sha"]}, {"source": ["e", "v"], "size": "s", "checksum": None})
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert sync_record.known(sync_record.load(path)) == {"a\udcff": (1, 2, 3, 4, "sha")}
    sync_record.forget(path)
    assert sync_record.load(path) == {}


def test_tree_sync_passes_and_seed(tmp_path):
    src, old, staged = tmp_path / "src", tmp_path / "old", tmp_path / "staged"
    for d in (src, old, staged):
        d.mkdir()
    (src / "keep").write_bytes(b"k" * 100)
    (src / "sub").mkdir()
    (src / "sub" / "change").write_bytes(b"c" * 50)
    os.symlink("keep", src / "link")
    os.link(src / "keep", src / "hard")
    (src / "single").write_bytes(b"s" * 30)
    st = os.lstat(src / "single")
    (old / "single").write_bytes(b"s" * 30)
    os.utime(old / "single", ns=(st.st_atime_ns, st.st_mtime_ns))
    (old / "stale").write_bytes(b"gone")
    sync = tree_sync.TreeSync(str(src), str(staged), seed_root=str(old))
    assert sync.run_pass(final=False) == 150  # 'single' seeded by a link, the group counted once
    assert os.lstat(staged / "single").st_ino == os.lstat(old / "single").st_ino
    assert not (staged / "stale").exists()
    (src / "sub" / "change").write_bytes(b"C" * 60)
    os.unlink(src / "single")
    assert sync.run_pass(final=True) == 60
    entries, staged_entries, _stats = sync.manifests()
    root = [e for e in entries if e["path"] == ""][0]
    staged_entries = [dict(e, mode=root["mode"], uid=root["uid"], gid=root["gid"]) if e["path"] == "" else e
                      for e in staged_entries]
    assert sorted(entries, key=lambda e: e["path"]) == sorted(staged_entries, key=lambda e: e["path"])
