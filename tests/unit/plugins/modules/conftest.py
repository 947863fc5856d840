"""Fixtures of the module tests."""

import importlib
import sys

import pytest

PREFIX = "ansible_collections.persist.docker.plugins."


@pytest.fixture
def without_sdk():
    """Import modules of the collection afresh while `import docker` fails; put the real ones back after."""
    saved = dict(sys.modules)
    for name in saved:
        if name == "docker" or name.startswith(("docker.", PREFIX)):
            del sys.modules[name]
    sys.modules["docker"] = None

    def load(name):
        return importlib.import_module(PREFIX + name)
    yield load
    sys.modules.clear()
    sys.modules.update(saved)
