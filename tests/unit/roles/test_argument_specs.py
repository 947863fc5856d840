"""Every role's defaults/main.yml and meta/argument_specs.yml list the same options with the same defaults."""

import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLES = sorted(d for d in os.listdir(os.path.join(ROOT, "roles"))
               if os.path.isfile(os.path.join(ROOT, "roles", d, "meta", "argument_specs.yml")))


def load(role, *parts):
    path = os.path.join(ROOT, "roles", role, *parts)
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_agree(role):
    defaults = load(role, "defaults", "main.yml")
    options = load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
    public = dict((k, v) for k, v in defaults.items() if not k.startswith("_"))
    assert sorted(public) == sorted(k for k, v in options.items() if "default" in v or k in public)
    for name, value in public.items():
        assert options[name].get("default") == value, "%s: default differs between defaults and argument_specs" % name


@pytest.mark.parametrize("role", ROLES)
def test_variables_are_prefixed(role):
    prefix = role + "_"
    names = list(load(role, "defaults", "main.yml")) + list(
        load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"])
    assert [n for n in names if not (n.startswith(prefix) or n.startswith("_" + prefix))] == []
