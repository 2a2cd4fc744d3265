"""Developer tasks: ``nox -s tests minimums lint types docs protos bench``.

Every session installs the project from this repository's own ``pyproject.toml`` into a fresh
virtualenv, so a session that passes here passes on a clean machine too.
"""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent

nox.options.sessions = ["lint", "types", "tests"]
nox.options.reuse_existing_virtualenvs = True

#: One pinned line per runtime dependency: the floor declared in pyproject.toml.
MINIMUMS = ROOT / "constraints" / "minimums.txt"

#: The public API that mypy checks. ``_proto`` is generated code and excluded in pyproject.toml.
TYPED_PACKAGES = ["src/pingthings/timeseries", "src/pingthings/server"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole pytest suite (async tests run on asyncio and trio inside it)."""
    session.install("-e", ".[test,plot]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def minimums(session: nox.Session) -> None:
    """Run the whole suite with every dependency at its declared floor (``constraints/minimums.txt``).

    pytest's own exit status decides, so a run that collects no test (exit 5) fails too.
    """
    session.install("-c", str(MINIMUMS), "-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and common bugs with ruff (configured in pyproject.toml)."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "--no-cache", ".", *session.posargs)  # a stale cache can hide errors


@nox.session
def types(session: nox.Session) -> None:
    """Type-check the public packages with mypy (generated protobuf code excluded)."""
    session.install("-e", ".[test]")
    targets = session.posargs or TYPED_PACKAGES
    session.run("mypy", *targets)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with mkdocs in strict mode (warnings are errors)."""
    session.install("-e", ".[docs]", "ruff>=0.6")  # ruff lets mkdocstrings format signatures
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs)


@nox.session
def protos(session: nox.Session) -> None:
    """Regenerate ``src/pingthings/_proto`` from ``protos/`` with betterproto2."""
    session.install("-e", ".[test]")
    session.run("python", "tools/gen_protos.py", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run every ``bench/*.py`` script in turn; each prints its own figures."""
    session.install("-e", ".[test]")
    scripts = sorted(p for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))
    if not scripts:
        session.skip("no bench/*.py scripts yet")
    for script in scripts:
        session.log(f"--- {script.name}")
        session.run("python", str(script.relative_to(ROOT)), *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """Long fuzz run: many random and mutated requests to every RPC of both server services.

    The default test run sends a few per RPC; this one sends ``PINGTHINGS_FUZZ_EXAMPLES`` (default
    500) each. Pass another count as the first argument: ``nox -s fuzz -- 2000``.
    """
    session.install("-e", ".[test]")
    examples = session.posargs[0] if session.posargs else "500"
    session.run(
        "python",
        "-m",
        "pytest",
        "tests/server/test_fuzz.py",
        "-q",
        env={"PINGTHINGS_FUZZ_EXAMPLES": examples},
    )
