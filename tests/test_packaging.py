"""The installed package (a wheel on the van, not this checkout) holds every Python package
of the source tree: a subsystem left out of pyproject.toml's list would work in every test,
which run from the checkout, and fail to import on the van."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_every_package_of_the_source_tree_is_installed() -> None:
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    for top in ("drivers", "supervisor"):
        for init in (ROOT / top).rglob("__init__.py"):
            name = ".".join(init.parent.relative_to(ROOT).parts)
            assert name in listed, f"{name} is missing from [tool.setuptools] packages"
