# Copyright (c) persist.docker contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Decisions for the registry module: validation, config.yml rendering, htpasswd and the plan.

Everything here is pure (no Docker, no network) so that it can be unit-tested.
The registry container receives its files (config.yml, htpasswd, certificate,
key) through the Engine API into ``CONFIG_DIR``; a fingerprint of those files is
kept as a container label, so a changed file is seen without reading secrets back.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import re

from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

try:
    import bcrypt
except ImportError:
    HAS_BCRYPT = False
else:
    HAS_BCRYPT = True

CONFIG_DIR = "/etc/docker/registry"
CONFIG_FILE = CONFIG_DIR + "/config.yml"
# The same configuration as JSON, read back to tell which keys changed.
CONFIG_JSON = CONFIG_DIR + "/config.json"
HTPASSWD_FILE = CONFIG_DIR + "/htpasswd"
CERT_FILE = CONFIG_DIR + "/server.crt"
KEY_FILE = CONFIG_DIR + "/server.key"
GCS_KEY_FILE = CONFIG_DIR + "/gcs-key.json"
STORAGE_DIR = "/var/lib/registry"
CONTAINER_PORT = 5000

FINGERPRINT_LABEL = "persist.docker.registry.fingerprint"
STORAGE_LABEL = "persist.docker.registry.storage"

BACKENDS = ("inmemory", "filesystem", "s3", "swift", "azure", "gcs", "oss")
# Backends that keep data outside the Docker host (no storage mount).
REMOTE_BACKENDS = ("s3", "swift", "azure", "gcs", "oss")

# The parameters of each remote backend as the distribution registry names them.
# type is the Ansible type of the suboption; no_log marks secrets.
BACKEND_PARAMS = {
    "s3": dict(
        accesskey=dict(type="str", no_log=False), secretkey=dict(type="str", no_log=True),
        region=dict(type="str"), regionendpoint=dict(type="str"), bucket=dict(type="str"),
        encrypt=dict(type="bool"), keyid=dict(type="str", no_log=False), secure=dict(type="bool"),
        skipverify=dict(type="bool"), v4auth=dict(type="bool"), chunksize=dict(type="int"),
        rootdirectory=dict(type="str"), storageclass=dict(type="str"),
    ),
    "swift": dict(
        authurl=dict(type="str"), username=dict(type="str"), password=dict(type="str", no_log=True),
        container=dict(type="str"), region=dict(type="str"), tenant=dict(type="str"),
        tenantid=dict(type="str"), domain=dict(type="str"), domainid=dict(type="str"),
        insecureskipverify=dict(type="bool"), prefix=dict(type="str"), authversion=dict(type="int"),
        chunksize=dict(type="int"),
    ),
    "azure": dict(
        accountname=dict(type="str"), accountkey=dict(type="str", no_log=True),
        container=dict(type="str"), realm=dict(type="str"),
    ),
    "gcs": dict(
        bucket=dict(type="str"), keyfile=dict(type="path"), rootdirectory=dict(type="str"),
        chunksize=dict(type="int"),
    ),
    "oss": dict(
        accesskeyid=dict(type="str", no_log=False), accesskeysecret=dict(type="str", no_log=True),
        region=dict(type="str"), bucket=dict(type="str"), endpoint=dict(type="str"),
        internal=dict(type="bool"), encrypt=dict(type="bool"), secure=dict(type="bool"),
        chunksize=dict(type="int"), rootdirectory=dict(type="str"),
    ),
}

BACKEND_REQUIRED = {
    "s3": ("bucket",),
    "swift": ("authurl", "username", "password", "container"),
    "azure": ("accountname", "accountkey", "container"),
    "gcs": ("bucket",),
    "oss": ("accesskeyid", "accesskeysecret", "region", "bucket"),
}

# Paths of secrets in the rendered config; they are masked in results and diffs.
SECRET_PATHS = (
    ("http", "secret"),
    ("storage", "s3", "secretkey"),
    ("storage", "swift", "password"),
    ("storage", "azure", "accountkey"),
    ("storage", "oss", "accesskeysecret"),
    ("proxy", "password"),
)
MASK = "********"

_USERNAME_RE = re.compile(r"^[^:\s]+$")
_VOLUME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_ANONYMOUS_RE = re.compile(r"^[0-9a-f]{64}$")


def storage_spec():
    """Argument spec entries for the remote backends (one dict option per backend)."""
    return {name: dict(type="dict", options=copy.deepcopy(params)) for name, params in BACKEND_PARAMS.items()}


def validate(params):
    """Check the registry options for contradictions before anything changes. Raises DockerError."""
    _validate_storage(params)
    _validate_access(params)
    port = params.get("published_port")
    if port is None or not 1 <= port <= 65535:
        raise DockerError("registry '%s': published_port %s is not a TCP port (1-65535)" % (params["name"], port))
    address = params.get("bind_address")
    if address and not _is_ip_address(address):
        raise DockerError("registry '%s': bind_address '%s' is not an IP address; give one such as 0.0.0.0 or "
                          "127.0.0.1" % (params["name"], address))
    if params.get("extra_config") is not None and not isinstance(params["extra_config"], dict):
        raise DockerError("registry '%s': extra_config must be a mapping of config.yml keys" % params["name"])


def _is_ip_address(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _validate_storage(params):
    name = params["name"]
    backend = params["storage"]
    if backend not in BACKENDS:
        raise DockerError("registry '%s': unknown storage backend '%s'; use one of %s"
                          % (name, backend, ", ".join(BACKENDS)))
    if backend in REMOTE_BACKENDS:
        options = params.get(backend) or {}
        missing = [key for key in BACKEND_REQUIRED[backend] if options.get(key) in (None, "")]
        if missing:
            raise DockerError("registry '%s': storage %s needs %s; set them under the option %s"
                              % (name, backend, ", ".join("%s.%s" % (backend, k) for k in missing), backend))
    if backend != "filesystem" and (params.get("storage_path") or params.get("storage_volume")):
        raise DockerError("registry '%s': storage_path and storage_volume only apply to storage filesystem, "
                          "not %s; remove them or set storage: filesystem" % (name, backend))
    if params.get("storage_path") and params.get("storage_volume"):
        raise DockerError("registry '%s': give either storage_path (a host directory) or storage_volume "
                          "(a named volume), not both" % name)
    volume = params.get("storage_volume")
    if volume and not _VOLUME_RE.match(volume):
        raise DockerError("registry '%s': storage_volume '%s' is not a valid volume name" % (name, volume))


def _validate_access(params):
    name = params["name"]
    if bool(params.get("server_cert")) != bool(params.get("server_key")):
        raise DockerError("registry '%s': TLS needs both server_cert and server_key; only %s is set"
                          % (name, "server_cert" if params.get("server_cert") else "server_key"))
    seen = set()
    for user in params.get("users") or []:
        username = user.get("username") or ""
        if not _USERNAME_RE.match(username):
            raise DockerError("registry '%s': user name '%s' is empty or contains ':' or blanks" % (name, username))
        if username in seen:
            raise DockerError("registry '%s': user '%s' is listed twice in users" % (name, username))
        if not user.get("password"):
            raise DockerError("registry '%s': user '%s' has no password" % (name, username))
        seen.add(username)
    if params.get("users") and not HAS_BCRYPT:
        raise DockerError("registry '%s': users need the Python package bcrypt on the managed host to hash "
                          "the passwords; install it (pip install bcrypt) or remove users" % name)
    proxy = params.get("proxy")
    if proxy and not (proxy.get("remote_url") or "").startswith(("http://", "https://")):
        raise DockerError("registry '%s': proxy.remote_url must be an http:// or https:// URL, got '%s'"
                          % (name, proxy.get("remote_url")))
    if proxy and bool(proxy.get("username")) != bool(proxy.get("password")):
        raise DockerError("registry '%s': proxy needs both username and password, or neither" % name)


def is_loopback_address(address):
    """Whether a bind address only answers this host (127.0.0.0/8, ::1, localhost)."""
    text = (address or "").strip().strip("[]")
    if text == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def plan_exposure(params):
    """Which address the registry is published on, and what to warn about (pure).

    Only a registry with TLS (server_cert) and users may answer other hosts by default; any other
    registry binds to 127.0.0.1 unless bind_address says otherwise and allow_insecure acknowledges it.
    Users without TLS would send their passwords in clear text: refused except on a loopback address.
    Returns (bind address, warnings); raises DockerError for a refused setup.
    """
    name = params["name"]
    tls = bool(params.get("server_cert"))
    users = bool(params.get("users"))
    given = params.get("bind_address") or None
    allow = bool(params.get("allow_insecure"))
    if tls and users:
        return given or "0.0.0.0", []
    address = given or ("0.0.0.0" if allow else "127.0.0.1")
    if is_loopback_address(address):
        return address, []
    if users:
        raise DockerError("registry '%s': users without server_cert would send their passwords in clear text to "
                          "bind_address %s; give server_cert and server_key, or bind to 127.0.0.1"
                          % (name, address))
    missing = "TLS (server_cert) and users" if not tls else "users"
    if not allow:
        raise DockerError("registry '%s': bind_address %s would let other hosts reach a registry without %s, so "
                          "anyone there could push and delete images; give server_cert, server_key and users, "
                          "bind to 127.0.0.1, or set allow_insecure: true to accept it" % (name, address, missing))
    how = "over plain HTTP without users" if not tls else "without users"
    deleting = " and delete" if params.get("delete_enabled") else ""
    return address, ["registry '%s' answers other hosts on %s:%s %s (allow_insecure): anyone who reaches it can "
                     "read, push%s images" % (name, address, params.get("published_port"), how, deleting)]


def listen_address(params):
    """http.addr inside the container: all interfaces on a bridge, the published address on the host network."""
    if params.get("network_mode") == "host":
        return "%s:%d" % (params.get("bind_address") or "0.0.0.0", params["published_port"])
    return ":%d" % CONTAINER_PORT


def deep_merge(base, extra):
    """A copy of base with extra merged in; mappings merge key by key, everything else is replaced."""
    result = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _clean(options):
    return {k: v for k, v in sorted((options or {}).items()) if v is not None}


def render_config(params):
    """The config.yml content as a dict, from the (validated) module options."""
    backend = params["storage"]
    storage = {}
    if backend == "filesystem":
        storage["filesystem"] = {"rootdirectory": STORAGE_DIR}
    elif backend == "inmemory":
        storage["inmemory"] = {}
    else:
        options = _clean(params.get(backend))
        if backend == "s3":
            options.setdefault("region", "us-east-1")
        if backend == "gcs" and options.get("keyfile"):
            options["keyfile"] = GCS_KEY_FILE
        storage[backend] = options
    storage["cache"] = {"blobdescriptor": "inmemory"}
    storage["delete"] = {"enabled": bool(params.get("delete_enabled"))}
    storage["maintenance"] = {"readonly": {"enabled": bool(params.get("read_only"))}}
    if params.get("read_only"):
        storage["maintenance"]["uploadpurging"] = {"enabled": False}

    http = {"addr": listen_address(params), "headers": {"X-Content-Type-Options": ["nosniff"]}}
    if params.get("http_secret"):
        http["secret"] = params["http_secret"]
    if params.get("server_cert"):
        http["tls"] = {"certificate": CERT_FILE, "key": KEY_FILE}

    config = {
        "version": "0.1",
        "log": {"fields": {"service": "registry"}},
        "storage": storage,
        "http": http,
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    if params.get("users"):
        config["auth"] = {"htpasswd": {"realm": params.get("auth_realm") or "Registry Realm", "path": HTPASSWD_FILE}}
    proxy = params.get("proxy")
    if proxy:
        config["proxy"] = _clean({"remoteurl": proxy["remote_url"], "username": proxy.get("username"),
                                  "password": proxy.get("password")})
    return deep_merge(config, params.get("extra_config"))


def mask_secrets(config):
    """A copy of a rendered config with the secret values replaced by a mask."""
    result = copy.deepcopy(config)
    for path in SECRET_PATHS:
        node = result
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict) and node.get(path[-1]) not in (None, ""):
            node[path[-1]] = MASK
    return result


# --- YAML: a small, deterministic emitter (managed hosts need not have PyYAML) ----------------

_PLAIN_RE = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")
_YAML_WORDS = ("true", "false", "yes", "no", "on", "off", "null", "y", "n", "~")


def _scalar(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    text = str(value)
    if _PLAIN_RE.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)


def _key(key):
    text = str(key)
    return text if _PLAIN_RE.match(text) and text.lower() not in _YAML_WORDS else json.dumps(text)


def _inline(value):
    """The text of a value that fits on its line: scalars and empty collections."""
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def _emit(value, indent, lines):
    pad = "  " * indent
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            item = value[key]
            if isinstance(item, (dict, list)) and item:
                lines.append("%s%s:" % (pad, _key(key)))
                _emit(item, indent + 1, lines)
            else:
                lines.append("%s%s: %s" % (pad, _key(key), _inline(item)))
        return
    for item in value:
        if isinstance(item, (dict, list)) and item:
            nested = []
            _emit(item, indent + 1, nested)
            lines.append("%s- %s" % (pad, nested[0].lstrip()))
            lines.extend(nested[1:])
        else:
            lines.append("%s- %s" % (pad, _inline(item)))


def to_yaml(config):
    """Render a config dict as block YAML with sorted keys (stable text, stable fingerprint)."""
    lines = []
    _emit(config, 0, lines)
    return "\n".join(lines) + "\n"


# --- htpasswd ---------------------------------------------------------------------------------

def parse_htpasswd(text):
    """{user: hash} from htpasswd text."""
    entries = {}
    for raw in (text or "").splitlines():
        line = raw.strip()
        if line and ":" in line and not line.startswith("#"):
            user, _sep, hashed = line.partition(":")
            entries[user] = hashed
    return entries


def render_htpasswd(users, existing_text=None, rounds=10):
    """htpasswd text with bcrypt hashes; keeps an existing hash when the password still matches.

    Returns (text, changed_users): changed_users are the users whose hash is new.
    """
    if not users:
        return None, []
    if not HAS_BCRYPT:
        raise DockerError("users need the Python package bcrypt on the managed host; "
                          "install it with pip install bcrypt")
    existing = parse_htpasswd(existing_text)
    lines = []
    changed = []
    for user in users:
        username, password = user["username"], user["password"].encode("utf-8")
        old = existing.get(username)
        if old and _bcrypt_matches(password, old):
            hashed = old
        else:
            hashed = bcrypt.hashpw(password, bcrypt.gensalt(rounds=rounds, prefix=b"2b")).decode("ascii")
            changed.append(username)
        lines.append("%s:%s" % (username, hashed))
    return "\n".join(lines) + "\n", changed


def _bcrypt_matches(password, hashed):
    try:
        return bcrypt.checkpw(password, hashed.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False


# --- the files, their fingerprint, and the plan ----------------------------------------------

def file_fingerprint(files):
    """One digest of the files put into the container ({path: bytes})."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(files[path]).hexdigest().encode("ascii") + b"\n")
    return digest.hexdigest()


def wanted_ports(params):
    """HostConfig.PortBindings the container should have, normalised as {"5000/tcp": "addr:port"}."""
    if params.get("network_mode") == "host":
        return {}
    return {"%d/tcp" % CONTAINER_PORT: "%s:%d" % (params.get("bind_address") or "0.0.0.0", params["published_port"])}


def current_ports(port_bindings):
    """Normalise HostConfig.PortBindings from a container inspect."""
    result = {}
    for port, bindings in sorted((port_bindings or {}).items()):
        for binding in bindings or []:
            result[port] = "%s:%s" % (binding.get("HostIp") or "0.0.0.0", binding.get("HostPort"))
    return result


def current_mounts(mounts, keep_anonymous=False):
    """Normalise the Mounts of a container inspect.

    Anonymous volumes are left out (the image's VOLUME), except at STORAGE_DIR with keep_anonymous
    (filesystem storage: there an anonymous volume holds the images).
    """
    result = {}
    for mount in mounts or []:
        if mount.get("Type") == "bind":
            result[mount["Destination"]] = "bind:%s" % mount["Source"].rstrip("/")
        elif mount.get("Type") == "volume" and (
                not _ANONYMOUS_RE.match(mount.get("Name") or "")
                or (keep_anonymous and mount.get("Destination") == STORAGE_DIR)):
            result[mount["Destination"]] = "volume:%s" % mount["Name"]
    return result


def describe_state(container, labels=None, keep_anonymous=False):
    """The comparable state of an existing registry container (from inspect), or None."""
    if not container:
        return None
    host_config = container.get("HostConfig") or {}
    labels = labels if labels is not None else (container.get("Config") or {}).get("Labels") or {}
    policy = host_config.get("RestartPolicy") or {}
    return dict(
        id=container["Id"],
        image_id=container.get("Image"),
        fingerprint=labels.get(FINGERPRINT_LABEL),
        ports=current_ports(host_config.get("PortBindings")),
        mounts=current_mounts(container.get("Mounts"), keep_anonymous),
        network_mode=host_config.get("NetworkMode") or "default",
        restart_policy=policy.get("Name") or "no",
        running=bool((container.get("State") or {}).get("Running")),
    )


def plan(current, wanted, state):
    """Decide what to do with the registry container.

    current: describe_state(...) or None; wanted: the same keys for the wanted container.
    Returns (action, reasons): action is one of "create", "recreate", "update", "start",
    "remove", "none"; reasons says which of config, image, ports, mounts, network mode
    differ (for a recreate) or what else changes.
    """
    if state == "absent":
        return ("remove", ["state is absent"]) if current else ("none", [])
    if current is None:
        return "create", ["the container does not exist"]
    reasons = []
    if current["fingerprint"] != wanted["fingerprint"]:
        reasons.append("config")
    if current["image_id"] != wanted["image_id"]:
        reasons.append("image")
    if current["ports"] != wanted["ports"]:
        reasons.append("ports")
    if current["mounts"] != wanted["mounts"]:
        reasons.append("mounts")
    if _network(current["network_mode"]) != _network(wanted["network_mode"]):
        reasons.append("network mode")
    if reasons:
        return "recreate", reasons
    extra = []
    if current["restart_policy"] != wanted["restart_policy"]:
        extra.append("restart policy")
    if not current["running"]:
        extra.append("not running")
    if "restart policy" in extra:
        return "update", extra
    if extra:
        return "start", extra
    return "none", []


def _network(mode):
    return "bridge" if mode in (None, "", "default", "bridge") else mode


def config_changes(before, after, prefix=""):
    """Dotted paths of config keys that differ between two rendered configs (secret values masked)."""
    changes = []
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    for key in sorted(set(before) | set(after), key=str):
        path = "%s%s" % (prefix, key)
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes.extend(config_changes(old, new, path + "."))
        elif old != new:
            changes.append(path)
    return changes
