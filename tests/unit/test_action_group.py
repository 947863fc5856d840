"""Every module documents its attributes from the shared fragment and is in the action group it claims."""

import glob
import importlib
import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py"))
                 if not p.endswith("__init__.py"))


def runtime_group():
    with open(os.path.join(ROOT, "meta", "runtime.yml")) as f:
        return yaml.safe_load(f)["action_groups"]["docker"]


def documentation(name):
    module = importlib.import_module("ansible_collections.persist.docker.plugins.modules." + name)
    return yaml.safe_load(module.DOCUMENTATION)


def engine_modules():
    """The modules with the connection options: those that module_defaults of the group can set."""
    return [name for name in MODULES
            if "persist.docker.docker" in documentation(name)["extends_documentation_fragment"]]


def test_the_group_lists_exactly_the_engine_modules():
    assert sorted(runtime_group()) == engine_modules()
    assert "tls_certificate" not in runtime_group()  # no docker_host: group defaults would break it


@pytest.mark.parametrize("name", MODULES)
def test_module_uses_the_attributes_fragments(name):
    doc = documentation(name)
    fragments = doc["extends_documentation_fragment"]
    assert "persist.docker.attributes" in fragments
    assert ("persist.docker.attributes.actiongroup_docker" in fragments) == ("persist.docker.docker" in fragments)
    for attribute in ("check_mode", "diff_mode", "idempotent"):
        assert doc["attributes"][attribute]["support"] in ("full", "partial", "none")


def test_the_fragment_names_the_group_of_runtime_yml():
    from ansible_collections.persist.docker.plugins.doc_fragments.attributes import ModuleDocFragment

    action_group = yaml.safe_load(ModuleDocFragment.ACTIONGROUP_DOCKER)["attributes"]["action_group"]
    assert action_group["membership"] == ["persist.docker.docker"]
    assert runtime_group()
