import pytest

from ansible_collections.persist.docker.plugins.module_utils.client import (
    connection_error_text,
    connection_settings,
    error_text,
    tls_files,
)
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError


def params(**overrides):
    base = dict(docker_host="unix:///var/run/docker.sock", tls=False, validate_certs=False, ca_path=None,
                client_cert=None, client_key=None, api_version="auto", timeout=60, tls_hostname=None,
                use_ssh_client=False)
    base.update(overrides)
    return base


def test_plain_socket_has_no_tls():
    assert connection_settings(params(), environ={}) == dict(
        base_url="unix:///var/run/docker.sock", version="auto", timeout=60, tls=None, tls_hostname=None)


@pytest.mark.parametrize("shell_out", [False, True])
def test_ssh_hosts_choose_the_transport(shell_out):
    settings = connection_settings(params(docker_host="ssh://root@h:22", use_ssh_client=shell_out), environ={})
    assert settings["base_url"] == "ssh://root@h:22"
    assert settings["use_ssh_client"] is shell_out
    assert "use_ssh_client" not in connection_settings(params(use_ssh_client=True), environ={})


def test_tls_hostname_only_with_verification(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    checked = connection_settings(params(docker_host="tcp://127.0.0.1:2376", validate_certs=True,
                                         ca_path=str(tmp_path / "ca.pem"), tls_hostname="engine.test"), environ={})
    assert checked["tls_hostname"] == "engine.test"
    unchecked = connection_settings(params(docker_host="tcp://127.0.0.1:2376", tls=True, tls_hostname="engine.test"),
                                    environ={})
    assert unchecked["tls_hostname"] is None


def test_tls_files_fall_back_to_docker_cert_path():
    assert tls_files(params(), environ={"DOCKER_CERT_PATH": "/certs"}) == (
        "/certs/ca.pem", "/certs/cert.pem", "/certs/key.pem")
    assert tls_files(params(ca_path="/my/ca.pem"), environ={"DOCKER_CERT_PATH": "/certs"})[0] == "/my/ca.pem"
    assert tls_files(params(), environ={}) == (None, None, None)


def test_validate_certs_uses_ca_and_https(tmp_path):
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    settings = connection_settings(params(docker_host="tcp://192.0.2.1:2376", validate_certs=True),
                                   environ={"DOCKER_CERT_PATH": str(tmp_path)})
    assert settings["base_url"] == "https://192.0.2.1:2376"
    assert settings["tls"] == dict(ca_cert=str(tmp_path / "ca.pem"), verify=True,
                                   client_cert=(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")))


def test_tls_without_verification_ignores_ca():
    settings = connection_settings(params(docker_host="tcp://h:2376", tls=True, ca_path="/missing"), environ={})
    assert settings["tls"] == dict(ca_cert=None, verify=False, client_cert=None)


def test_client_cert_without_key_is_an_error():
    with pytest.raises(DockerError, match="needs both client_cert and client_key"):
        connection_settings(params(tls=True, client_cert="/c.pem"), environ={})


def test_missing_ca_file_is_named(tmp_path):
    with pytest.raises(DockerError, match="ca_path .*missing.pem does not exist"):
        connection_settings(params(validate_certs=True, ca_path=str(tmp_path / "missing.pem")), environ={})


def test_error_text_prefers_the_explanation():
    class Err(Exception):
        explanation = b"No such container: x"

    assert error_text(Err("500 Server Error")) == "No such container: x"
    assert error_text(ValueError()) == "ValueError"


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("Error while fetching server API version: ('Connection aborted.', "
         "FileNotFoundError(2, 'No such file or directory'))", "No such file or directory"),
        ("Error while fetching server API version: HTTPConnectionPool(host='127.0.0.1', port=1): Max retries "
         "exceeded with url: /version (Caused by NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=1): "
         "Failed to establish a new connection: [Errno 111] Connection refused\"))", "Connection refused"),
        ("something else", "something else"),
    ],
)
def test_connection_error_text_finds_the_root_cause(text, cause):
    assert connection_error_text(Exception(text)) == cause


def test_os_errors_become_one_line_with_the_file_and_a_hint():
    from ansible_collections.persist.docker.plugins.module_utils.errors import os_errors

    with pytest.raises(DockerError) as caught, os_errors("copy of volume 'a'", "run again"):
        raise PermissionError(13, "Permission denied", "/var/lib/docker/volumes/a/_data/x")
    assert str(caught.value) == ("copy of volume 'a' failed: Permission denied "
                                 "(/var/lib/docker/volumes/a/_data/x); run again")


def test_paramiko_loads_only_for_an_ssh_engine():
    """The SDK's ssh transport (and paramiko) load when an ssh:// client is made, not on import."""
    import os
    import subprocess
    import sys

    code = """
import socket, sys
from ansible_collections.persist.docker.plugins.module_utils import client
import docker
assert "paramiko" not in sys.modules, "paramiko loaded on import"
assert client._ssh_errors() == ()
docker.APIClient(base_url="unix:///var/run/nothing-here.sock", version="1.41")
assert "paramiko" not in sys.modules, "paramiko loaded for a unix socket"
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()  # a closed port on the loopback: the real transport tries it and fails
try:
    docker.APIClient(base_url="ssh://root@127.0.0.1:%d" % port, version="1.41")
except Exception as exc:
    print(type(exc).__module__)
assert "paramiko" in sys.modules and client._ssh_errors()[0] is sys.modules["paramiko"].SSHException
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("paramiko"), out.stdout
