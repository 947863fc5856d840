"""volume_access: a volume's root reached from this host (LocalRoot) or through helper containers (ApiRoot)."""

import os

import pytest

from ansible_collections.persist.docker.plugins.module_utils import volume_access as va
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


def test_local_root_counts_and_applies(tmp_path):
    root = tmp_path / "vol"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f").write_text("hello")
    (root / "g").write_text("x" * 10)
    os.symlink("/nonexistent", str(root / "link"))
    lr = va.LocalRoot(str(root))
    assert lr.holds_data()
    assert lr.usage() == dict(size=15, files=2, entries=4)
    uid, gid = os.getuid(), os.getgid()
    os.chmod(str(root), 0o755)
    assert lr.apply_ownership(uid, gid, 0o700, True, True) == dict(chown=0, chmod=1)
    assert lr.stat()["mode"] == 0o755
    assert lr.apply_ownership(uid, gid, 0o700, True, False) == dict(chown=0, chmod=1)
    assert lr.stat() == dict(uid=uid, gid=gid, mode=0o700, exists=True)
    assert lr.apply_ownership(uid, gid, 0o700, True, False) == dict(chown=0, chmod=0)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_local_root_chown_only_what_differs(tmp_path):
    root = tmp_path / "vol"
    root.mkdir()
    (root / "a").write_text("a")
    (root / "b").write_text("b")
    os.chown(str(root / "b"), 1000, 1000)
    lr = va.LocalRoot(str(root))
    assert lr.apply_ownership(1000, 1000, None, False, False) == dict(chown=1, chmod=0)
    assert lr.apply_ownership(1000, 1000, None, True, True) == dict(chown=1, chmod=0)
    assert lr.apply_ownership(1000, 1000, None, True, False) == dict(chown=1, chmod=0)
    assert lr.apply_ownership(1000, 1000, None, True, False) == dict(chown=0, chmod=0)
    assert os.stat(str(root / "a")).st_uid == 1000


def test_empty_local_root(tmp_path):
    lr = va.LocalRoot(str(tmp_path))
    assert not lr.holds_data()
    assert lr.usage() == dict(size=0, files=0, entries=0)
    missing = va.LocalRoot(str(tmp_path / "missing"))
    assert missing.stat()["exists"] is False
    assert not missing.holds_data()


def test_path_root_needs_absolute_path():
    with pytest.raises(DockerError, match="not absolute"):
        va.path_root(None, "unix:///var/run/docker.sock", "data")


def test_path_root_choice(tmp_path):
    assert va.path_root(None, "tcp://10.0.0.1:2376", str(tmp_path)).how == "api"
    assert va.path_root(None, "unix:///x.sock", str(tmp_path), method="api").how == "api"
    expected = "local" if os.geteuid() == 0 else "api"
    assert va.path_root(None, "unix:///x.sock", str(tmp_path)).how == expected


def test_volume_root_choice(tmp_path):
    plain = {"Name": "d", "Driver": "local", "Options": None, "Mountpoint": str(tmp_path)}
    tmpfs = {"Name": "t", "Driver": "local", "Options": {"type": "tmpfs", "device": "tmpfs"},
             "Mountpoint": str(tmp_path)}
    bind = {"Name": "b", "Driver": "local", "Options": {"type": "none", "o": "bind", "device": str(tmp_path)},
            "Mountpoint": "/nonexistent"}
    local = "local" if os.geteuid() == 0 else "api"
    assert va.volume_root(None, "unix:///s", plain).how == local
    assert va.volume_root(None, "tcp://h:1", plain).how == "api"
    assert va.volume_root(None, "unix:///s", tmpfs).how == "api"
    root = va.volume_root(None, "unix:///s", bind)
    assert root.how == local and (local == "api" or root.path == str(tmp_path))
    with pytest.raises(DockerError, match="only inside containers"):
        va.volume_root(None, "unix:///s", tmpfs, method="local")


class FakeModule:
    def __init__(self):
        self.deprecations = []

    def deprecate(self, msg, version=None, collection_name=None):
        self.deprecations.append((msg, version, collection_name))


class FakeDockerModule:
    def __init__(self, method):
        self.params = {"method": method}
        self.module = FakeModule()


@pytest.mark.parametrize(("given", "method", "deprecated"), [
    ("auto", "auto", False), ("local", "local", False), ("api", "api", False),
    ("host", "local", True), ("container", "api", True),
])
def test_method_of_maps_the_old_root_access_words_once(given, method, deprecated):
    dm = FakeDockerModule(given)
    assert va.method_of(dm) == method
    assert va.method_of(dm) == method  # the second ask warns no more
    assert dm.module.deprecations == ([("method: %s (a value of the old option root_access) is deprecated; write "
                                        "method: %s" % (given, method), "2.0.0", "persist.docker")]
                                      if deprecated else [])


def test_method_argument():
    assert va.method_argument() == dict(type="str", default="auto", choices=["auto", "local", "api"])
    old = va.method_argument(root_access=True)
    assert old["aliases"] == ["root_access"] and old["choices"] == ["auto", "local", "api", "host", "container"]
    assert old["deprecated_aliases"] == [dict(name="root_access", version="2.0.0", collection_name="persist.docker")]
