"""The Examples sections of the public docstrings run and print what they say (doctest).

Examples that need files or a long run are marked ``+SKIP`` in the docstring itself; every other
one is run here, so a docstring cannot drift away from the code it documents.
"""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import phasekit


def _modules() -> list[str]:
    names = [phasekit.__name__]
    for info in pkgutil.walk_packages(phasekit.__path__, prefix=phasekit.__name__ + "."):
        names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_every_package_is_walked():
    """The walk finds the subpackages (a broken ``__init__`` would hide their modules)."""
    for sub in ("cdi", "ptycho", "tomo", "spi", "io", "cli", "engine", "operators", "core"):
        assert f"phasekit.{sub}" in MODULES
    assert len(MODULES) > 100


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    try:
        mod = importlib.import_module(name)
    except ImportError as exc:  # an optional dependency (e.g. dask) is not installed
        pytest.skip(f"{name}: {exc}")
    tests = [t for t in doctest.DocTestFinder().find(mod, name) if t.examples]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    failed = []
    for t in tests:
        if t.name.split(".")[-1] == "__test__":
            continue
        res = runner.run(t, out=lambda s: failed.append(s))
        assert res.failed == 0, f"{t.name}:\n" + "".join(failed)
