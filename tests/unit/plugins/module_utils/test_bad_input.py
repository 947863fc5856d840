"""Bad input that used to end in a traceback or a hang, now a DockerError that names the object and the cause."""

import gzip
import io
import os
import tarfile

import pytest

from ansible_collections.persist.docker.plugins.module_utils import (
    archive,
    fdtree,
    manifest,
    registry_api,
    registry_config,
    tar_stream,
    volume_access,
)
from ansible_collections.persist.docker.plugins.module_utils.client import connect
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


def connection(**overrides):
    params = dict(docker_host="unix:///var/run/docker.sock", tls=False, validate_certs=False, ca_path=None,
                  client_cert=None, client_key=None, api_version="auto", timeout=60)
    params.update(overrides)
    return params


@pytest.mark.parametrize("overrides, names", [
    (dict(docker_host="http://[bad"), "docker_host 'http://[bad'"),
    (dict(api_version="banana"), "api_version 'banana'"),
])
def test_invalid_connection_options_are_named(overrides, names):
    with pytest.raises(DockerError, match="is not valid") as caught:
        connect(connection(**overrides))
    assert names in str(caught.value)


def damaged_gzip(tmp_path):
    member = tarfile.TarInfo("./big")
    member.size = 256 * 4096
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tar:
        tar.addfile(member, io.BytesIO(bytes(range(256)) * 4096))
    data = bytearray(gzip.compress(plain.getvalue()))
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    path = tmp_path / "bad.tar.gz"
    path.write_bytes(bytes(data))
    return str(path)


def test_damaged_gzip_archive_names_the_archive(tmp_path):
    path = damaged_gzip(tmp_path)
    source = archive.ArchiveSource(path, "gzip", {"entries": [manifest.make_entry("", "dir", 0o755, 0, 0, mtime=0)]})
    with pytest.raises(DockerError, match="cannot be decompressed as gzip") as caught:
        list(source.archive(True, [], [0]))
    assert path in str(caught.value)


def test_an_archive_that_is_no_tar_names_the_archive(tmp_path):
    path = tmp_path / "not.tar"
    path.write_bytes(bytes(range(256)) * 8)
    root = manifest.make_entry("", "dir", 0o755, 0, 0, mtime=0)
    source = archive.ArchiveSource(str(path), "none", {"entries": [root]})
    with pytest.raises(DockerError, match="is not a valid tar archive") as caught:
        list(source.archive(True, [], [0]))
    assert str(path) in str(caught.value)


def test_decompression_errors_per_compression():
    import zlib

    assert archive.decompression_errors("gzip") == (zlib.error,)
    assert archive.decompression_errors("none") == ()


class GoneApi:
    """An engine on which the helper container was removed: the write is refused and the helper is gone."""

    def inspect_container(self, cid):
        from docker.errors import NotFound

        raise NotFound("No such container: %s" % cid)


def test_write_to_a_helper_that_was_removed_names_it():
    side = volume_access.ApiRoot(GoneApi(), "v", "busybox:latest")
    error = side._write_error("cid", DockerError("volume 'v': not found on the Docker daemon"))
    assert "volume 'v'" in str(error) and "lost the helper container while writing (it was removed)" in str(error)


def test_registry_ca_path_that_does_not_exist(tmp_path):
    missing = str(tmp_path / "ca.pem")
    with pytest.raises(DockerError, match="registry_ca_path %s does not exist" % missing):
        registry_api.RegistryClient("localhost:5000", ca_path=missing)


def test_registry_bind_address_must_be_an_ip_address():
    params = dict(name="r", storage="inmemory", published_port=5000, bind_address="not-an-ip", users=[],
                  extra_config={})
    with pytest.raises(DockerError, match="bind_address 'not-an-ip' is not an IP address"):
        registry_config.validate(params)
    registry_config.validate(dict(params, bind_address="::1"))


def test_a_file_that_vanishes_while_archiving(tmp_path, monkeypatch):
    root = tmp_path / "v"
    root.mkdir()
    (root / "a").write_bytes(b"x" * 100)
    st = os.lstat(root / "a")
    # the walk saw "gone" (a regular file), which is deleted before it is opened
    parent = fdtree.open_root(str(root))
    monkeypatch.setattr(manifest, "read_ahead", lambda walk: iter([("gone", parent, "gone", st, None)]))
    path = str(tmp_path / "a.tar.gz")
    with pytest.raises(DockerError, match="No such file or directory") as caught:
        archive.write_archive(tar_stream.local_tar(str(root), [], True), path, "gzip", None)
    assert "gone" in str(caught.value)
    assert not os.path.exists(path + ".partial")


def test_tls_to_a_plain_http_registry(monkeypatch):
    client = registry_api.RegistryClient("localhost:5000", scheme="https")

    def refuse(*args, **kwargs):
        raise registry_api.SSLError("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")

    monkeypatch.setattr(client, "_send", refuse)
    with pytest.raises(DockerError, match="registry localhost:5000 does not answer in TLS .*registry_scheme: http"):
        client.request("GET", "/v2/")
