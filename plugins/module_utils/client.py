# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way this collection talks to a Docker daemon.

Every module that talks to an engine builds a :class:`DockerModule` from its
own argument spec; the shared connection options are merged in. It is the
module base (``module.PersistModule``: check and diff mode, the one error
path, the exit) plus :attr:`DockerModule.api`, a client connected on first use.
This is the file that imports the Docker SDK, and only when it is installed.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import types
from contextlib import contextmanager

from ansible.module_utils.basic import env_fallback, missing_required_lib

# DockerError and os_errors live in errors.py (no Docker SDK there); re-exported here for older imports.
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError, os_errors  # noqa: F401 pylint: disable=unused-import
from ansible_collections.persist.docker.plugins.module_utils.module import PersistModule

_SSH_TRANSPORT = "docker.transport.sshconn"


def _real_ssh_adapter(*args, **kwargs):
    """The SDK's SSHHTTPAdapter, its module (and paramiko) loaded now; see _defer_ssh_transport()."""
    module = sys.modules.get(_SSH_TRANSPORT)
    if getattr(module, "__persist_docker_stand_in__", False):
        del sys.modules[_SSH_TRANSPORT]
    return importlib.import_module(_SSH_TRANSPORT).SSHHTTPAdapter(*args, **kwargs)


def _defer_ssh_transport():
    """Stand in for docker.transport.sshconn until an ssh:// engine is used.

    That module imports paramiko, a fifth of a module's start-up, which only ssh:// engines need.
    The SDK takes one name from it, SSHHTTPAdapter, and only calls it (for an ssh:// base URL): the
    stand-in's loads the real module then and makes the real adapter.
    """
    if "docker" in sys.modules or _SSH_TRANSPORT in sys.modules:
        return
    stand_in = types.ModuleType(_SSH_TRANSPORT)
    stand_in.__persist_docker_stand_in__ = True
    stand_in.SSHHTTPAdapter = _real_ssh_adapter
    sys.modules[_SSH_TRANSPORT] = stand_in


_defer_ssh_transport()

try:
    import docker
    from docker.errors import APIError, DockerException, NotFound
    from requests.exceptions import RequestException
except ImportError:
    HAS_DOCKER = False

    # Never raised: without the SDK no call reaches an engine (DockerModule.api says what to install).
    class DockerException(Exception):
        pass

    class APIError(DockerException):
        pass

    class NotFound(APIError):
        pass

    class RequestException(Exception):
        pass
else:
    HAS_DOCKER = True


def is_local_engine(docker_host):
    """Whether the engine at docker_host runs on this host (a local Unix socket)."""
    return (docker_host or "").startswith("unix://") or (docker_host or "").startswith("/")


def _ssh_errors():
    """paramiko's base error when paramiko is loaded (only an ssh:// engine loads it)."""
    paramiko = sys.modules.get("paramiko")
    return (paramiko.SSHException,) if paramiko is not None else ()


DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

DOCKER_COMMON_ARGS = dict(
    docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST, aliases=["docker_url"],
                     fallback=(env_fallback, ["DOCKER_HOST"])),
    tls=dict(type="bool", default=False, fallback=(env_fallback, ["DOCKER_TLS"])),
    validate_certs=dict(type="bool", default=False, aliases=["tls_verify"],
                        fallback=(env_fallback, ["DOCKER_TLS_VERIFY"])),
    ca_path=dict(type="path", aliases=["ca_cert", "tls_ca_cert", "cacert_path"]),
    client_cert=dict(type="path", aliases=["tls_client_cert", "cert_path"]),
    client_key=dict(type="path", aliases=["tls_client_key", "key_path"], no_log=False),
    api_version=dict(type="str", default="auto", aliases=["docker_api_version"],
                     fallback=(env_fallback, ["DOCKER_API_VERSION"])),
    timeout=dict(type="int", default=60, fallback=(env_fallback, ["DOCKER_TIMEOUT"])),
    tls_hostname=dict(type="str", fallback=(env_fallback, ["DOCKER_TLS_HOSTNAME"])),
    use_ssh_client=dict(type="bool", default=False),
)

CONNECTION_OPTIONS = tuple(DOCKER_COMMON_ARGS)

# The connection options of one side of a module that talks to two engines (volume_relocate's source
# and destination): the same names and types, without defaults, so that an unset one is the module's own.
SIDE_CONNECTION_ARGS = dict((name, dict((key, value) for key, value in spec.items() if key in ("type", "no_log")))
                            for name, spec in DOCKER_COMMON_ARGS.items())


def tls_files(params, environ=None):
    """Return (ca_path, client_cert, client_key), completed from DOCKER_CERT_PATH."""
    environ = os.environ if environ is None else environ
    cert_dir = environ.get("DOCKER_CERT_PATH")
    files = []
    for option, default_name in (("ca_path", "ca.pem"), ("client_cert", "cert.pem"), ("client_key", "key.pem")):
        value = params.get(option)
        if not value and cert_dir:
            value = os.path.join(cert_dir, default_name)
        files.append(value)
    return tuple(files)


def connection_settings(params, environ=None):
    """Turn the connection options into keyword arguments for docker.APIClient.

    Pure: raises DockerError for contradictory or incomplete TLS settings.
    """
    host = params["docker_host"]
    use_tls = params["tls"] or params["validate_certs"]
    settings = dict(base_url=host, version=params["api_version"], timeout=params["timeout"], tls=None,
                    tls_hostname=None)
    if host.startswith("ssh://"):
        settings["use_ssh_client"] = bool(params.get("use_ssh_client"))
    if not use_tls:
        return settings
    ca_path, client_cert, client_key = tls_files(params, environ)
    if bool(client_cert) != bool(client_key):
        raise DockerError("TLS client authentication needs both client_cert and client_key; "
                          "only %s is set" % ("client_cert" if client_cert else "client_key"))
    checked = [("client_cert", client_cert), ("client_key", client_key)]
    if params["validate_certs"]:
        checked.append(("ca_path", ca_path))
    for option, path in checked:
        if path and not os.path.isfile(path):
            raise DockerError("%s %s does not exist or is not a file" % (option, path))
    settings["tls"] = dict(
        ca_cert=ca_path if params["validate_certs"] else None,
        verify=bool(params["validate_certs"]),
        client_cert=(client_cert, client_key) if client_cert else None,
    )
    if host.startswith("tcp://"):
        settings["base_url"] = "https://" + host[len("tcp://"):]
    if params.get("tls_hostname") and params["validate_certs"]:
        settings["tls_hostname"] = params["tls_hostname"]
    return settings


def error_text(exc):
    """The shortest useful text of an exception raised by the Docker SDK."""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return explanation.decode() if isinstance(explanation, bytes) else str(explanation)
    return str(exc) or exc.__class__.__name__


_OS_ERROR_RE = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)|Error\(-?\d+, '([^']+)'\)")


def connection_error_text(exc):
    """The root cause of a failed connection ("Connection refused"), else error_text()."""
    text = error_text(exc)
    match = _OS_ERROR_RE.search(text)
    if match:
        return (match.group(1) or match.group(2)).strip()
    return text


class DockerModule(PersistModule):
    """The module base with the shared connection options and a Docker client connected on first use.

    The Docker SDK is needed only when a manager uses :attr:`api`: a module that talks to a
    registry over HTTP alone runs without it.
    """

    def __init__(self, argument_spec, **kwargs):
        spec = dict(DOCKER_COMMON_ARGS)
        spec.update(argument_spec)
        super().__init__(spec, **kwargs)
        self._api = None

    @property
    def host(self):
        return self.params["docker_host"]

    @property
    def api(self):
        """The low-level docker.APIClient, connected on first use."""
        if self._api is None:
            if not HAS_DOCKER:
                raise DockerError(missing_required_lib("docker (the Docker SDK for Python, >= 7)")
                                  + " Install it on the managed host, for example with pip install 'docker>=7'.")
            self._api = connect(self.params)
        return self._api


def _hostname_adapter(hostname, pool_maxsize):
    """A requests adapter whose TLS connections check the daemon's certificate against ``hostname``."""
    import requests.adapters

    class HostnameAdapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            kwargs["assert_hostname"] = hostname
            kwargs["server_hostname"] = hostname
            super().init_poolmanager(*args, **kwargs)

    return HostnameAdapter(pool_maxsize=pool_maxsize)


def _client(settings, tls_hostname):
    if not tls_hostname:
        return docker.APIClient(**settings)
    # The SDK has no option for the name to check; its client asks the daemon for the API version
    # while it is built, before another adapter could be mounted. So: ask with a client of a fixed
    # version and the adapter mounted, then build the real one for the version the daemon speaks.
    wanted = settings["version"]
    if wanted in (None, "auto"):
        probe = docker.APIClient(**dict(settings, version=docker.constants.MINIMUM_DOCKER_API_VERSION))
        probe.mount("https://", _hostname_adapter(tls_hostname, docker.constants.DEFAULT_MAX_POOL_SIZE))
        try:
            wanted = probe.version(api_version=False)["ApiVersion"]
        finally:
            probe.close()
        if docker.utils.version_gte(wanted, docker.constants.DEFAULT_DOCKER_API_VERSION):
            wanted = docker.constants.DEFAULT_DOCKER_API_VERSION
    client = docker.APIClient(**dict(settings, version=wanted))
    client.mount("https://", _hostname_adapter(tls_hostname, docker.constants.DEFAULT_MAX_POOL_SIZE))
    return client


def connect(params):
    """A docker.APIClient for the connection options, or DockerError."""
    settings = connection_settings(params)
    tls = settings.pop("tls")
    tls_hostname = settings.pop("tls_hostname")
    host = params["docker_host"]
    try:
        if tls is not None:
            settings["tls"] = docker.tls.TLSConfig(**tls)
        client = _client(settings, tls_hostname)
        client.ping()
    except (DockerException, RequestException) as exc:
        hint = ("; for ssh:// install paramiko on the managed host or set use_ssh_client: true"
                if host.startswith("ssh://") and "paramiko" in error_text(exc) else "")
        raise DockerError(
            "cannot reach the Docker daemon at %s (%s); check that the daemon runs and that "
            "docker_host (or DOCKER_HOST) and the TLS options point at it%s"
            % (host, connection_error_text(exc), hint)
        ) from None
    except ValueError as exc:
        raise DockerError(
            "cannot connect to the Docker daemon: docker_host %r or api_version %r is not valid (%s); give a URL "
            "such as unix:///var/run/docker.sock or tcp://host:2376, and an API version such as 1.41 or auto"
            % (host, params["api_version"], exc)) from None
    except (OSError,) + _ssh_errors() as exc:  # paramiko's own errors (connection, authentication, host keys)
        raise DockerError(
            "cannot reach the Docker daemon at %s over SSH (%s: %s); check that the key is accepted and "
            "the host key is in known_hosts, or set use_ssh_client: true to use the ssh client and its "
            "configuration" % (host, type(exc).__name__, exc)) from None
    return client


@contextmanager
def api_errors(subject):
    """Translate Docker SDK exceptions raised inside the block into DockerError.

    ``subject`` names the object the calls are about, e.g. "container 'web'".
    """
    try:
        yield
    except NotFound:
        raise DockerError("%s not found on the Docker daemon" % subject) from None
    except APIError as exc:
        raise DockerError("%s: the Docker daemon refused the request: %s" % (subject, error_text(exc))) from None
    except (DockerException, RequestException) as exc:
        raise DockerError("%s: lost the connection to the Docker daemon: %s" % (subject, error_text(exc))) from None


def get_or_none(subject, call, *args, **kwargs):
    """call(*args, **kwargs), or None when the Engine says the object does not exist."""
    with api_errors(subject):
        try:
            return call(*args, **kwargs)
        except NotFound:
            return None
