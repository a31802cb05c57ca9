"""Every public name the API reference documents has a docstring, and the reference covers every package."""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import captum_hint

API = Path(__file__).resolve().parents[2] / "docs" / "api"


def documented_modules():
    return sorted({m for page in API.glob("*.rst") for m in re.findall(r"^\.\. automodule:: (\S+)$", page.read_text(), re.M)})


def public_objects(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, o in vars(module).items()
                 if not n.startswith("_") and getattr(o, "__module__", None) == module.__name__]
    for name in names:
        value = getattr(module, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            yield f"{module.__name__}.{name}", value


def members(cls):
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (classmethod, staticmethod)):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            yield name, value


def test_every_package_has_an_api_page():
    packages = {f"captum_hint.{p.name}" for p in pkgutil.iter_modules(captum_hint.__path__) if p.ispkg}
    assert packages <= set(documented_modules())


def test_every_documented_public_name_has_a_docstring():
    undocumented = []
    for module_name in documented_modules():
        for name, value in public_objects(importlib.import_module(module_name)):
            if not inspect.getdoc(value):
                undocumented.append(name)
            if inspect.isclass(value) and value.__module__.startswith("captum_hint"):
                undocumented += [f"{name}.{m}" for m, v in members(value) if not v.__doc__]
    assert undocumented == []
