"""The documentation's API reference, README and mkdocs config stay in step with the code."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$", re.MULTILINE)


def _directives() -> list[str]:
    names: list[str] = []
    for page in sorted((DOCS / "api").glob("*.md")):
        names.extend(DIRECTIVE.findall(page.read_text(encoding="utf-8")))
    return names


def _resolve(dotted: str) -> object:
    """Import ``dotted`` as a module, or as an attribute of the longest importable module prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_the_reference_documents_something() -> None:
    assert len(_directives()) >= 10


@pytest.mark.parametrize("dotted", _directives())
def test_every_documented_name_imports(dotted: str) -> None:
    assert _resolve(dotted) is not None


def _nav_files(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [f for item in node for f in _nav_files(item)]
    if isinstance(node, dict):
        return [f for value in node.values() for f in _nav_files(value)]
    return []


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    in_nav = set(_nav_files(config["nav"]))
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert in_nav == on_disk


def test_readme_has_the_two_newcomer_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install -e . && pingthings demo" in readme
    assert "pip install -e '.[test]' && python -m pytest" in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install -q -e '.[test]'" in ci and "python -m pytest" in ci


def test_the_readme_tour_runs_against_an_embedded_server(tmp_path: Path) -> None:
    """Every Python block of the README, in order, against a fresh server (its endpoint swapped in)."""
    from pingthings.server import Server

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert len(blocks) >= 4
    with Server(tmp_path / "data", listen="127.0.0.1:0") as server:
        code = compile("\n".join(blocks).replace("127.0.0.1:4410", server.endpoint), "README.md", "exec")
        for _ in range(2):  # a reader pastes the tour twice: the second run must work as well
            namespace: dict[str, object] = {"__name__": "readme_tour"}
            exec(code, namespace)
            # the tour inserted 7 200 points and read them back
            raw = namespace["raw"]
            assert len(raw) == 7_200  # type: ignore[arg-type]
            tables = namespace["tables"]
            assert len(tables) == 1  # type: ignore[arg-type]  # only this run's stream


def _python_blocks() -> list[tuple[str, int, str]]:
    found = []
    # architecture.md lists interfaces as signatures, not runnable code
    pages = [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if p.name != "architecture.md")]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for number, block in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)):
            found.append((str(page.relative_to(ROOT)), number, block))
    return found


@pytest.mark.parametrize(("page", "number", "block"), _python_blocks(),
                         ids=[f"{p}#{n}" for p, n, _ in _python_blocks()])
def test_every_python_example_is_valid_python(page: str, number: int, block: str) -> None:
    import ast

    compile(block, f"{page} block {number}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    """``mkdocs build --strict`` (what ``nox -s docs`` runs), when the docs extra is installed."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "client" / "index.html").is_file()


#: Characters of code that fit the docs site's content column without a horizontal scroll bar.
CODE_WIDTH = 88


def test_docs_code_blocks_fit_the_page() -> None:
    too_wide = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.DOTALL):
            too_wide += [f"{page.relative_to(ROOT)}: {line}" for line in block.splitlines()
                         if len(line) > CODE_WIDTH]
    assert not too_wide, "\n".join(too_wide)
