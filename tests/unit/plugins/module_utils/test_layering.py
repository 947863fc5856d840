"""The layering rule of plugins/: which file may import what (docs/DEVELOPING.md, "Layers").

Every file's imports are read with ast, nothing is imported. A row of FORBIDDEN names a
module_utils file and what it must not import: a top-level package (the Docker SDK) or another
module_utils file. Add a row for a new file; the rule for pure files is PURE.
"""

import ast
import pathlib

import pytest

PLUGINS = pathlib.Path(__file__).resolve().parents[4] / "plugins"
MODULE_UTILS = "ansible_collections.persist.docker.plugins.module_utils"

# What talks to Docker (or to a registry over HTTP): the SDK and the files built on it.
SDK = {"docker", "requests", "paramiko"}
DOCKER_FILES = {"client", "volume_access", "api_sync", "volumes", "containers", "locking", "layers", "ownership",
                "registry_api", "registry_container", "hooks"}
# Pure files: the tree, its manifests, tar streams, archives and copies, id mapping. They hold no Docker
# connection, so that they can be read, tested and reused without a daemon.
PURE = SDK | DOCKER_FILES

# Names a pure file may still take from client.py (none: DockerError and os_errors live in errors.py).
FROM_CLIENT = set()

FORBIDDEN = {
    "fdtree": PURE,
    "idmap": PURE,
    "manifest": PURE,
    "buffers": PURE,
    "tree_copy": PURE | {"tar_stream", "archive", "archive_check", "transfer"},
    "tar_stream": PURE | {"archive", "archive_check", "transfer"},
    "archive_check": PURE | {"archive", "transfer"},
    "archive": PURE | {"transfer"},
    "transfer": PURE | {"tar_stream", "tree_copy", "tree_sync", "archive"},
    # incremental copies: the plan (pure, below everything) and its local run (beside tree_copy)
    "resync": PURE | {"fdtree", "tree_copy", "tree_sync", "tar_stream", "archive", "transfer"},
    "tree_sync": PURE | {"tar_stream", "archive", "archive_check", "transfer"},
    "sync_record": PURE | {"tree_sync", "transfer", "module", "manager"},
    "volume_access": {"containers", "locking"},
    # the incremental copy through the Engine API: its sides by their interface, below volume_access
    "api_sync": {"containers", "locking", "volume_access", "volumes"},
    # the module base, the manager base and the errors: every module uses them, with or without the SDK
    "errors": PURE | {"module", "manager"},
    "module": PURE | {"manager"},
    "manager": PURE | {"module"},
    # plans of the modules of the same names
    "container": PURE,
    "engine_info": PURE,
    "tls_certificate": PURE,
    # the restic CLI: runs on hosts without the Docker SDK (backup_info), no module base either
    "restic": PURE | {"module", "manager"},
    # snapshots of volumes in a repository, and a snapshot as the source of a restore: on restic.py, no SDK
    "repository": PURE | {"module", "manager", "transfer"},
    # the plan of backup_retention: on top of restic.py, as pure
    "retention": PURE | {"module", "manager"},
    # the state of scheduled jobs (pure) and its files on the host: no SDK, no module base
    "jobstate": PURE | {"module", "manager", "atomic", "fdtree", "jobfiles"},
    "jobfiles": PURE | {"module", "manager"},
    # exclude patterns: below every file that reads a tree or a stream (they take it by its interface)
    "excludes": PURE | {"fdtree", "manifest", "tar_stream", "tree_copy", "archive", "archive_check", "transfer"},
    # commands in containers around a backup: no volume access, no quiescing (the module orders them)
    "hooks": {"volume_access", "containers", "locking", "volumes"},
}


def python_files():
    return sorted(p for p in PLUGINS.rglob("*.py") if p.name != "__init__.py")


def imports(path):
    """[(imported module, [names taken from it])] of the file at path; module_utils files by short name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [alias.name for alias in node.names]
            if node.module == MODULE_UTILS:
                found.extend((name, []) for name in names)
            else:
                found.append((node.module, names))
    return [(short(module), names) for module, names in found]


def short(module):
    return module[len(MODULE_UTILS) + 1:] if module.startswith(MODULE_UTILS + ".") else module


def test_the_table_names_real_files():
    files = {p.stem for p in (PLUGINS / "module_utils").glob("*.py")}
    assert set(FORBIDDEN) <= files
    assert files >= (PURE - SDK)


def violations(path, forbidden):
    """The imports of the file at path that forbidden (a FORBIDDEN row) rules out."""
    broken = []
    for module, names in imports(path):
        if module == "client" and "client" in forbidden and names and set(names) <= FROM_CLIENT:
            continue
        if module in forbidden or module.split(".")[0] in forbidden & SDK:
            broken.append(module)
    return broken


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(PLUGINS)))
def test_imports_follow_the_layers(path):
    forbidden = FORBIDDEN.get(path.stem, set()) if path.parent.name == "module_utils" else set()
    broken = violations(path, forbidden)
    assert not broken, "%s must not import %s (see docs/DEVELOPING.md, Layers)" % (path.name, ", ".join(broken))


def private_uses(path):
    """The private names (one leading underscore) of module_utils files that the file at path uses."""
    tree = ast.parse(path.read_text(), str(path))
    modules = set()
    used = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(MODULE_UTILS):
            for alias in node.names:
                if node.module == MODULE_UTILS:
                    modules.add(alias.asname or alias.name)
                elif alias.name.startswith("_"):
                    used.append("%s.%s" % (short(node.module), alias.name))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            used.append("%s.%s" % (node.value.id, node.attr))
    return sorted(set(used))


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(PLUGINS)))
def test_no_file_uses_a_private_name_of_another(path):
    used = private_uses(path)
    assert not used, "%s uses private names of other files: %s" % (path.name, ", ".join(used))


def test_the_check_sees_a_forbidden_import(tmp_path):
    """Both spellings of an import are seen; a rule that cannot fail proves nothing."""
    path = tmp_path / "tar_stream.py"
    path.write_text("import docker.errors\nfrom %s import volume_access as va\nfrom %s.client import connect\n"
                    "from %s.client import DockerError\nfrom %s import fdtree\n"
                    % (MODULE_UTILS, MODULE_UTILS, MODULE_UTILS, MODULE_UTILS))
    assert violations(path, FORBIDDEN["tar_stream"]) == ["docker.errors", "volume_access", "client", "client"]


def test_the_check_sees_a_private_name(tmp_path):
    path = tmp_path / "volume_backup.py"
    path.write_text("from %s import archive\nfrom %s.tar_stream import _ZEROS\narchive._zstandard()\narchive.__name__\n"
                    % (MODULE_UTILS, MODULE_UTILS))
    assert private_uses(path) == ["archive._zstandard", "tar_stream._ZEROS"]
