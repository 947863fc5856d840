"""atomic: new files 0600 unless told, temporaries created new, a symlink at a temporary name refused."""

import os
import stat

import pytest

from ansible_collections.persist.docker.plugins.module_utils import archive, atomic, buffers, fdtree
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


def mode_of(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def test_write_text_is_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        atomic.write_text(str(tmp_path / "m.json"), "{}")
        atomic.write_text(str(tmp_path / "o.json"), "{}", 0o644)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "m.json") == 0o600 and mode_of(tmp_path / "o.json") == 0o644
    assert (tmp_path / "m.json").read_text() == "{}" and not (tmp_path / "m.json.tmp").exists()


def test_a_symlink_at_the_temporary_name_is_refused_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    os.symlink(str(victim), str(tmp_path / "m.json.tmp"))
    with pytest.raises(DockerError, match=r"m.json.tmp is a symbolic link; refusing to write through it"):
        atomic.write_text(str(tmp_path / "m.json"), "forged")
    assert victim.read_text() == "keep" and not (tmp_path / "m.json").exists()


def test_a_leftover_temporary_file_is_replaced(tmp_path):
    (tmp_path / "m.json.tmp").write_text("from a killed run")
    os.chmod(str(tmp_path / "m.json.tmp"), 0o666)
    atomic.write_text(str(tmp_path / "m.json"), "new")
    assert (tmp_path / "m.json").read_text() == "new" and mode_of(tmp_path / "m.json") == 0o600


@pytest.mark.parametrize("direct", [True, False])
def test_write_archive_is_private_and_refuses_a_symlinked_partial(tmp_path, direct):
    pool = buffers.BufferPool(count=4, size=64 << 10) if direct else None
    chunks = [memoryview(pool.take())] if direct else [b"x" * 1000]
    path = str(tmp_path / "a.tar")
    archive.write_archive(iter(chunks), path, "none", pool)
    assert mode_of(path) == 0o600
    victim = tmp_path / "victim"
    victim.write_text("keep")
    os.symlink(str(victim), path + ".partial")
    with pytest.raises(DockerError, match=r"a.tar.partial is a symbolic link; refusing to write through it"):
        archive.write_archive(iter([b"y" * 1000]), path, "none", mode=0o640)
    assert victim.read_text() == "keep" and os.path.islink(path + ".partial")


def test_write_text_in_a_directory_by_descriptor(tmp_path):
    """Inside a volume: the directory is held by descriptor, a symlink at the temporary name is refused."""
    (tmp_path / "staging").mkdir()
    staging = fdtree.open_root(str(tmp_path / "staging"))
    atomic.write_text_in(staging, "state", "verified sha256:1\n")
    assert (tmp_path / "staging" / "state").read_text() == "verified sha256:1\n"
    victim = tmp_path / "victim"
    victim.write_text("keep")
    os.symlink(str(victim), str(tmp_path / "staging" / "state.tmp"))
    with pytest.raises(DockerError, match="state.tmp is a symbolic link"):
        atomic.write_text_in(staging, "state", "moving sha256:1\n")
    assert victim.read_text() == "keep"


def test_sync_file_system_syncs_or_names_the_bad_descriptor(tmp_path):
    fd = os.open(str(tmp_path), os.O_RDONLY)
    try:
        atomic.sync_file_system(fd)
    finally:
        os.close(fd)
    with pytest.raises(OSError) as info:
        atomic.sync_file_system(fd)
    assert info.value.errno == 9  # EBADF: the closed descriptor
