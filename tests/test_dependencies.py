"""The declared dependency ranges: floors pinned for the minimums session, caps, nothing undeclared.

The floors themselves are proven by ``nox -s minimums`` (the whole suite at constraints/minimums.txt);
these tests keep pyproject.toml, that constraints file and the package's imports in step.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "pingthings"

#: Libraries whose private attributes the package uses (see docs/dependencies.md): each must be capped.
USES_INTERNALS = {"anyio", "grpclib", "h2", "hyperframe"}

#: Import names that differ from the distribution's name.
DISTRIBUTION_OF = {"yaml": "pyyaml"}


def _project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]  # type: ignore[no-any-return]


def _runtime_requirements() -> dict[str, Requirement]:
    reqs = (Requirement(text) for text in _project()["dependencies"])  # type: ignore[attr-defined]
    return {canonicalize_name(r.name): r for r in reqs}


def _pinned_minimums() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints" / "minimums.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints/minimums.txt: {line!r} is not a NAME==VERSION pin"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _floor(spec: SpecifierSet) -> Version | None:
    floors = [Version(s.version.replace("*", "0")) for s in spec if s.operator in (">=", "==")]
    return max(floors) if floors else None


def test_every_runtime_dependency_has_a_floor_pinned_in_the_minimums_file() -> None:
    requirements, pins = _runtime_requirements(), _pinned_minimums()
    assert sorted(pins) == sorted(requirements), "constraints/minimums.txt must pin every runtime dependency"
    for name, requirement in requirements.items():
        floor = _floor(requirement.specifier)
        assert floor is not None, f"{name} has no floor in pyproject.toml"
        assert pins[name] == floor, f"{name}: pyproject.toml says >={floor}, minimums.txt pins {pins[name]}"


def test_libraries_whose_internals_are_used_are_capped_below_their_next_breaking_release() -> None:
    requirements = _runtime_requirements()
    for name in sorted(USES_INTERNALS):
        assert name in requirements, f"{name} is used but not declared"
        spec = requirements[name].specifier
        floor = _floor(spec)
        assert floor is not None
        caps = [Version(s.version) for s in spec if s.operator == "<"]
        assert caps, f"{name} has no upper bound"
        # Next major, or next minor for 0.x: the first release allowed to break private attributes.
        breaking = Version(f"0.{floor.minor + 1}") if floor.major == 0 else Version(f"{floor.major + 1}")
        assert min(caps) <= breaking, f"{name} is capped at {min(caps)}, above {breaking}"


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level third-party module -> the package files importing it (generated code left out)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if "_proto" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top != "pingthings":
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_library_is_declared() -> None:
    project = _project()
    declared = set(_runtime_requirements())
    for extra in project["optional-dependencies"].values():  # type: ignore[attr-defined]
        declared.update(canonicalize_name(Requirement(text).name) for text in extra)
    imports = _third_party_imports()
    assert "hpack" in imports  # the scan sees the package's imports
    undeclared = {
        module: sorted(files)
        for module, files in imports.items()
        if canonicalize_name(DISTRIBUTION_OF.get(module, module)) not in declared
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
