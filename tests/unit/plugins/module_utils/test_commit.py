import pytest

from ansible_collections.persist.docker.plugins.module_utils.commit import (
    FINGERPRINT_LABEL,
    commit_changes,
    fingerprint,
    plan_commit,
    validate_changes,
)
from ansible_collections.persist.docker.plugins.module_utils.errors import DockerError
from ansible_collections.persist.docker.plugins.module_utils.reference import registry_of, split_reference


@pytest.mark.parametrize(
    ("repository", "tag", "expected"),
    [
        ("new_nginx_image", "latest", ("new_nginx_image", "latest")),
        ("localhost:5000/app", "v1", ("localhost:5000/app", "v1")),
        ("localhost:5000/app:v2", "latest", ("localhost:5000/app", "v2")),
        ("registry.example.com/team/app_x", "2024-06-01", ("registry.example.com/team/app_x", "2024-06-01")),
        ("a__b/c-d.e", "T_1.x", ("a__b/c-d.e", "T_1.x")),
        ("[::1]:5000/app", "1", ("[::1]:5000/app", "1")),
    ],
)
def test_split_reference_accepts(repository, tag, expected):
    assert split_reference(repository, tag) == expected


@pytest.mark.parametrize(
    ("repository", "tag", "fragment"),
    [
        ("UPPER", "latest", "invalid repository name 'UPPER'"),
        ("has space", "latest", "invalid repository name"),
        ("app/", "latest", "invalid repository name"),
        ("-app", "latest", "invalid repository name"),
        ("app", ".bad", "invalid tag '.bad'"),
        ("app", "", "invalid tag ''"),
        ("app", "x" * 129, "invalid tag"),
        ("app@sha256:" + "0" * 64, "latest", "holds a digest"),
    ],
)
def test_split_reference_rejects(repository, tag, fragment):
    with pytest.raises(DockerError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        split_reference(repository, tag)


def test_validate_changes_normalizes_and_accepts_commit_instructions():
    changes = ["  ENV A=1 ", "cmd [\"sh\"]", "LABEL a=b", "EXPOSE 80", "USER 1000", "WORKDIR /srv"]
    assert validate_changes(changes) == ["ENV A=1", "cmd [\"sh\"]", "LABEL a=b", "EXPOSE 80", "USER 1000",
                                         "WORKDIR /srv"]


@pytest.mark.parametrize("change", ["RUN echo hi", "COPY a b", "ADD x y", "FROM busybox", "", "ENV"])
def test_validate_changes_rejects(change):
    with pytest.raises(DockerError, match="changes: "):
        validate_changes([change])


def test_fingerprint_depends_on_every_input():
    base = fingerprint("c1", "local:aa", "me", "msg", ["ENV A=1"])
    assert base == fingerprint("c1", "local:aa", "me", "msg", ["ENV A=1"])
    others = {
        fingerprint("c2", "local:aa", "me", "msg", ["ENV A=1"]),
        fingerprint("c1", "local:ab", "me", "msg", ["ENV A=1"]),
        fingerprint("c1", "local:aa", "you", "msg", ["ENV A=1"]),
        fingerprint("c1", "local:aa", "me", "other", ["ENV A=1"]),
        fingerprint("c1", "local:aa", "me", "msg", ["ENV A=2"]),
        fingerprint("c1", "local:aa", "me", "msg", []),
    }
    assert base not in others
    assert len(others) == 6
    assert fingerprint("c", "l", None, None, []) == fingerprint("c", "l", "", "", [])


def _image(label):
    return {"Id": "sha256:1", "Config": {"Labels": {FINGERPRINT_LABEL: label} if label else None}}


@pytest.mark.parametrize(
    ("existing", "force", "commit", "reason"),
    [
        (None, False, True, "does not exist"),
        (_image(None), False, True, "not committed by this module"),
        (_image("other"), False, True, "changed since the last commit"),
        (_image("fp"), False, False, "up to date"),
        (_image("fp"), True, True, "forced"),
        (None, True, True, "forced"),
    ],
)
def test_plan_commit(existing, force, commit, reason):
    decided, why = plan_commit(existing, "fp", force)
    assert decided is commit
    assert reason in why


def test_commit_changes_appends_the_fingerprint_label():
    assert commit_changes(["ENV A=1"], "abc") == ["ENV A=1", 'LABEL %s="abc"' % FINGERPRINT_LABEL]


@pytest.mark.parametrize(
    ("name", "registry"),
    [("app", ""), ("team/app", ""), ("localhost/app", "localhost"), ("localhost:5000/a/b", "localhost:5000"),
     ("registry.example.com/app", "registry.example.com"), ("[::1]:5000/app", "[::1]:5000")],
)
def test_registry_of(name, registry):
    assert registry_of(name) == registry
