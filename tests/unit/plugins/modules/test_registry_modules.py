"""The registry modules reject bad input before they talk to a daemon or a registry."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.persist.docker.plugins.modules import registry, registry_gc, registry_image, registry_info

NO_DAEMON = "unix:///nonexistent/docker.sock"


def run_module(capsys, module, **args):
    args.setdefault("docker_host", NO_DAEMON)
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("args", "fragment"), [
    (dict(storage="s3", s3=dict(region="eu-west-1")), "storage s3 needs s3.bucket"),
    (dict(storage="nfs"), "value of storage must be one of"),
    (dict(server_cert="/etc/hostname"), "TLS needs both server_cert and server_key"),
    (dict(storage_path="/etc/hostname"), "storage_path /etc/hostname exists and is not a directory"),
    (dict(storage="inmemory", storage_volume="v"), "only apply to storage filesystem"),
    (dict(users=[dict(username="a:b", password="Secret-Pw-1")]), "contains ':'"),
    (dict(proxy=dict(remote_url="registry.example.com")), "must be an http:// or https:// URL"),
])
def test_registry_bad_input_fails_before_connecting(capsys, args, fragment):
    result = run_module(capsys, registry, **args)
    assert result["failed"] is True
    assert fragment in result["msg"]
    assert "cannot reach" not in result["msg"]
    assert "Secret-Pw-1" not in json.dumps(result)


def test_registry_unreachable_daemon(capsys):
    result = run_module(capsys, registry, storage="inmemory")
    assert result["msg"].startswith("cannot reach the Docker daemon at %s" % NO_DAEMON)


@pytest.mark.parametrize(("args", "fragment"), [
    (dict(name="busybox"), "does not name a registry"),
    (dict(name="localhost:5000/Bad"), "invalid repository"),
])
def test_registry_image_bad_name(capsys, args, fragment):
    result = run_module(capsys, registry_image, **args)
    assert result["failed"] is True and fragment in result["msg"]


def test_registry_image_unreachable_registry(capsys):
    result = run_module(capsys, registry_image, name="localhost:1/app:1", password="Secret-Pw-2", username="u")
    assert result["msg"].startswith("cannot reach the registry at http://localhost:1")
    assert "Secret-Pw-2" not in json.dumps(result)


@pytest.mark.parametrize(("args", "fragment"), [
    (dict(match="(["), "is not a valid regular expression"),
    (dict(keep=-1), "keep must be 0 or more"),
])
def test_registry_gc_bad_rule(capsys, args, fragment):
    result = run_module(capsys, registry_gc, name="registry", **args)
    assert result["failed"] is True and fragment in result["msg"]


def test_registry_info_bad_page_size_and_url(capsys):
    assert "page_size must be at least 1" in run_module(capsys, registry_info, registry_url="x:1", page_size=0)["msg"]
    assert "is not host[:port]" in run_module(capsys, registry_info, registry_url="https://x/v2/")["msg"]


class FakeDockerModule:
    host = "unix:///var/run/docker.sock"
    check_mode = False
    diff_mode = False

    def __init__(self, **params):
        self.params = dict(name="reg", storage="filesystem", storage_volume=None, purge_storage=True, **params)


class FailingInspectApi:
    """An engine whose image vanished right after the pull (another run removed it)."""

    def inspect_image(self, name):
        from docker.errors import NotFound
        raise NotFound("No such image: %s" % name)


def test_registry_image_pull_then_missing_image_is_a_clear_error():
    dm = FakeDockerModule(tag="1", force=False, state="pulled", source=None, username=None, password=None)
    dm.api = FailingInspectApi()
    manager = registry_image.RegistryImageManager(dm)
    manager.host, manager.repository, manager.tag = "localhost:5999", "app", "1"
    manager.full = "localhost:5999/app:1"
    manager.transfer = lambda verb: None
    remote = dict(digest="sha256:m", config_digest="sha256:c", size=1)
    with pytest.raises(registry.DockerError, match=r"image 'localhost:5999/app:1' \(after the pull\) not found"):
        manager.pull(remote)


def raise_oserror(path, *args, **kwargs):
    raise PermissionError(13, "Permission denied", path)


def test_storage_directory_that_cannot_be_created_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(registry.os, "makedirs", raise_oserror)
    manager = registry.RegistryManager(FakeDockerModule())
    missing = str(tmp_path / "store")
    manager.storage = dict(mounts={"/var/lib/registry": "bind:" + missing})
    with pytest.raises(registry.DockerError) as caught:
        manager.ensure_storage()
    assert str(caught.value) == ("registry 'reg': creating storage_path %s failed: Permission denied (%s); create it "
                                 "yourself or choose another storage_path" % (missing, missing))


def test_storage_directory_that_cannot_be_deleted_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(registry.shutil, "rmtree", raise_oserror)
    manager = registry.RegistryManager(FakeDockerModule())
    with pytest.raises(registry.DockerError, match="deleting storage_path %s failed: Permission denied" % tmp_path):
        manager.purge(("deleted storage directory %s" % tmp_path, "bind", str(tmp_path)))
    assert manager.actions == ["deleted storage directory %s" % tmp_path]
