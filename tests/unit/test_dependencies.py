"""The versions the tests run on are inside the ranges pyproject.toml declares, so a declared range never
promises a release nobody tested (the pinned ones: torch, transformers, onnxruntime, sentence-transformers,
uvicorn, whose h11 protocol server/transport.py subclasses, and mcp)."""

from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def declared() -> list[Requirement]:
    return [Requirement(line) for line in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]]


def test_installed_versions_are_inside_the_declared_ranges():
    outside = []
    for requirement in declared():
        installed = metadata.version(requirement.name)
        if not requirement.specifier.contains(installed, prereleases=True):
            outside.append(f"{requirement.name} {installed} is not {requirement.specifier}")
    assert not outside, outside


@pytest.mark.parametrize("name", ["torch", "transformers", "onnxruntime", "sentence-transformers", "uvicorn", "mcp"])
def test_libraries_whose_internals_we_use_have_an_upper_bound(name):
    (requirement,) = [r for r in declared() if r.name == name]
    assert any(spec.operator == "<" for spec in requirement.specifier), f"{name} has no upper bound"
