"""Resolving an image's USER through its own /etc/passwd and /etc/group (pure)."""

import pytest

from ansible_collections.persist.docker.plugins.module_utils import ownership as o
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError

PASSWD = """root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/var/www:/bin/false
app:x:1000:1001::/home/app:/bin/sh
# broken line
bad:x:notanumber:1::/:/bin/false
"""
GROUP = "root:x:0:\nwww-data:x:33:\napp:x:1001:\nstaff:x:50:app\n"


def test_parse():
    assert o.parse_passwd(PASSWD) == {"root": (0, 0), "www-data": (33, 33), "app": (1000, 1001)}
    assert o.parse_group(GROUP) == {"root": 0, "www-data": 33, "app": 1001, "staff": 50}


@pytest.mark.parametrize("spec,expected", [
    ("", (0, 0)),
    (None, (0, 0)),
    ("www-data", (33, 33)),
    ("app", (1000, 1001)),
    ("app:staff", (1000, 50)),
    ("1000", (1000, 1001)),
    ("4242", (4242, 0)),
    ("4242:4243", (4242, 4243)),
    ("www-data:0", (33, 0)),
])
def test_resolve_identity(spec, expected):
    assert o.resolve_identity(spec, PASSWD, GROUP, "image 'x'") == expected


@pytest.mark.parametrize("spec,match", [
    ("ghost", "does not know user 'ghost'"),
    ("app:ghosts", "does not know group 'ghosts'"),
])
def test_unknown_names(spec, match):
    with pytest.raises(DockerError, match=match):
        o.resolve_identity(spec, PASSWD, GROUP, "image 'x'")


def test_names_without_files():
    assert o.resolve_identity("1000:1000", None, None, "image 'x'") == (1000, 1000)
    with pytest.raises(DockerError, match="has no /etc/passwd"):
        o.resolve_identity("app", None, None, "image 'x'")
    with pytest.raises(DockerError, match="has no /etc/group"):
        o.resolve_identity("0:staff", PASSWD, None, "image 'x'")
