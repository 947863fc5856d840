"""fdtree: a tree read and written through directory descriptors; no symlink is ever followed."""

import os
import stat

import pytest

from ansible_collections.persist.docker.plugins.module_utils import fdtree
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


@pytest.fixture
def sentinel(tmp_path):
    """A directory outside the tree, with a subdirectory and a file, and a snapshot function of it."""
    outside = tmp_path / "OUTSIDE"
    (outside / "a" / "b").mkdir(parents=True)
    (outside / "a" / "b" / "secret").write_bytes(b"keep")
    os.chmod(str(outside / "a" / "b" / "secret"), 0o640)
    return outside


def snapshot(root):
    """Everything about a tree a change would show: paths, types, modes, owners, links, sizes, times, content."""
    seen = {}
    for base, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            path = os.path.join(base, name)
            st = os.lstat(path)
            content = open(path, "rb").read() if stat.S_ISREG(st.st_mode) else None  # noqa: SIM115
            seen[os.path.relpath(path, str(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size,
                                                      st.st_mtime_ns, content)
    return seen


def test_open_root_refuses_a_symlink(tmp_path, sentinel):
    os.symlink(str(sentinel), str(tmp_path / "link"))
    with pytest.raises(DockerError, match="link is a symbolic link; refusing to follow it"):
        fdtree.open_root(str(tmp_path / "link"))
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(DockerError, match="is not a directory"):
        fdtree.open_root(str(tmp_path / "file"))


def test_walk_lists_a_symlink_and_does_not_enter_it(tmp_path, sentinel):
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "f").write_bytes(b"x")
    os.symlink(str(sentinel), str(tree / "d" / "s"))
    walked = [(path, name, stat.S_IFMT(st.st_mode)) for path, _d, name, st in fdtree.walk(str(tree))]
    assert walked == [("", ".", stat.S_IFDIR), ("d", "d", stat.S_IFDIR), ("d/f", "f", stat.S_IFREG),
                      ("d/s", "s", stat.S_IFLNK)]


def test_walk_does_not_follow_a_directory_swapped_for_a_symlink(tmp_path, sentinel):
    """A container that swaps a directory for a symlink while the walk goes on leads it nowhere."""
    tree = tmp_path / "tree"
    (tree / "d" / "a" / "b").mkdir(parents=True)
    walked = fdtree.walk(str(tree))
    assert next(walked)[0] == ""
    assert next(walked)[0] == "d"
    os.rename(str(tree / "d"), str(tmp_path / "moved"))
    os.symlink(str(sentinel), str(tree / "d"))
    with pytest.raises(DockerError, match="d changed while it was read"):
        list(walked)


def test_open_file_refuses_a_swapped_file(tmp_path):
    (tmp_path / "f").write_bytes(b"one")
    root = fdtree.open_root(str(tmp_path))
    st = fdtree.lstat(root, "f")
    os.unlink(str(tmp_path / "f"))
    os.mkfifo(str(tmp_path / "f"))  # would block an open without O_NONBLOCK
    with pytest.raises(OSError, match="replaced while it was read"):
        fdtree.open_file(root, "f", st)
    os.unlink(str(tmp_path / "f"))
    os.symlink("/etc/passwd", str(tmp_path / "f"))
    with pytest.raises(OSError):
        fdtree.open_file(root, "f")


@pytest.mark.parametrize("depth", [1, 3])
def test_tree_refuses_a_symlink_at_any_depth(tmp_path, sentinel, depth):
    before = snapshot(sentinel)
    os.symlink(str(sentinel), str(tmp_path / "d"))
    tree = fdtree.Tree(fdtree.open_root(str(tmp_path)))
    path = "/".join(["d", "a", "b"][:depth])
    with pytest.raises(DockerError, match="'d' is a symbolic link or not a directory"):
        tree.dir(path)
    assert snapshot(sentinel) == before


def test_open_below_refuses_a_symlink_on_the_way(tmp_path, sentinel):
    os.symlink(str(sentinel), str(tmp_path / "d"))
    with pytest.raises(DockerError, match="d below .* is a symbolic link or not a directory"):
        fdtree.open_below(str(tmp_path), "d/a")
    (tmp_path / "e" / "f").mkdir(parents=True)
    assert fdtree.open_below(str(tmp_path), "e/f").path == "e/f"


def test_chmod_leaves_a_symlink_and_its_target_alone(tmp_path, sentinel):
    os.symlink(str(sentinel / "a" / "b" / "secret"), str(tmp_path / "s"))
    os.mkfifo(str(tmp_path / "p"), 0o600)
    root = fdtree.open_root(str(tmp_path))
    fdtree.chmod(root, "s", 0o777)
    fdtree.chmod(root, "p", 0o4751)
    assert stat.S_IMODE(os.stat(str(sentinel / "a" / "b" / "secret")).st_mode) == 0o640
    assert stat.S_IMODE(os.lstat(str(tmp_path / "p")).st_mode) == 0o4751
