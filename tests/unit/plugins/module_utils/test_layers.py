import os
import stat

from ansible_collections.persist.docker.plugins.module_utils.layers import (
    _go_mode,
    format_history,
    local_upper_dir,
    normalize_changes,
    tree_digest,
)


def test_normalize_changes_maps_kinds_and_sorts():
    raw = [{"Path": "/root/testfile", "Kind": 1}, {"Path": "/root", "Kind": 0}, {"Path": "/etc/x", "Kind": 2}]
    assert normalize_changes(raw) == [
        {"path": "/etc/x", "kind": "D"},
        {"path": "/root", "kind": "C"},
        {"path": "/root/testfile", "kind": "A"},
    ]
    assert normalize_changes(None) == []


def test_format_history_is_oldest_first():
    history = [
        {"Id": "sha256:top", "Created": 1700000100, "CreatedBy": "CMD", "Size": 0, "Comment": "", "Tags": ["a:b"]},
        {"Id": "<missing>", "Created": 1700000000, "CreatedBy": "ADD", "Size": 42, "Comment": "c", "Tags": None},
    ]
    layers = format_history(history)
    assert [layer["created_by"] for layer in layers] == ["ADD", "CMD"]
    assert layers[0]["size"] == 42
    assert layers[0]["tags"] == []
    assert layers[1]["created"].startswith("2023-11-14T22:15:00")


def test_tree_digest_sees_rewrites_of_changed_files(tmp_path):
    (tmp_path / "root").mkdir()
    target = tmp_path / "root" / "testfile"
    target.write_text("test\n")
    first = tree_digest(str(tmp_path))
    assert tree_digest(str(tmp_path)) == first
    # Same size, content rewritten and mtime put back: ctime still moves.
    st = target.stat()
    target.write_text("TEST\n")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert tree_digest(str(tmp_path)) != first


def test_tree_digest_covers_new_entries_links_and_modes(tmp_path):
    before = tree_digest(str(tmp_path))
    (tmp_path / "dir").mkdir()
    after_dir = tree_digest(str(tmp_path))
    os.symlink("dangling", tmp_path / "dir" / "link")
    after_link = tree_digest(str(tmp_path))
    os.chmod(tmp_path / "dir", 0o700)
    after_chmod = tree_digest(str(tmp_path))
    assert len({before, after_dir, after_link, after_chmod}) == 4


def test_local_upper_dir_only_for_local_overlay2(tmp_path):
    attrs = {"GraphDriver": {"Name": "overlay2", "Data": {"UpperDir": str(tmp_path)}}}
    assert local_upper_dir(attrs, "unix:///var/run/docker.sock") == str(tmp_path)
    assert local_upper_dir(attrs, "tcp://192.0.2.1:2376") is None
    assert local_upper_dir({"GraphDriver": {"Name": "vfs", "Data": {}}}, "unix:///x") is None
    missing = {"GraphDriver": {"Name": "overlay2", "Data": {"UpperDir": str(tmp_path / "nope")}}}
    assert local_upper_dir(missing, "unix:///var/run/docker.sock") is None


def test_go_mode():
    assert stat.S_ISDIR(_go_mode((1 << 31) | 0o755))
    assert _go_mode(0o644) == stat.S_IFREG | 0o644


class FakeArchiveApi:
    """Stands in for the Engine's archive endpoint: path -> (mode, content)."""

    def __init__(self, files):
        self.files = files
        self.requested = []

    def get_archive(self, container, path):
        self.requested.append(path)
        mode, content = self.files[path]
        return iter([content[:3], content[3:]]), {"mode": mode}


def test_api_layer_digest_hashes_changed_files_and_skips_directories():
    from ansible_collections.persist.docker.plugins.module_utils.layers import api_layer_digest

    changes = [{"path": "/root", "kind": "C"}, {"path": "/root/f", "kind": "A"}, {"path": "/gone", "kind": "D"}]
    files = {"/root": ((1 << 31) | 0o700, b"ignored"), "/root/f": (0o644, b"tar-of-f")}
    api = FakeArchiveApi(files)
    first = api_layer_digest(api, "c", changes)
    assert api.requested == ["/root", "/root/f"]
    assert api_layer_digest(FakeArchiveApi(files), "c", changes) == first
    files_rewritten = dict(files, **{"/root/f": (0o644, b"tar-of-F")})
    assert api_layer_digest(FakeArchiveApi(files_rewritten), "c", changes) != first
    files_dir_changed = dict(files, **{"/root": ((1 << 31) | 0o700, b"other")})
    assert api_layer_digest(FakeArchiveApi(files_dir_changed), "c", changes) == first
    assert api_layer_digest(FakeArchiveApi(files), "c", changes[:2]) != first
