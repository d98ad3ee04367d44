"""The layout's rules, checked on the source: imports point one way and no package of one
modality imports another's (docs/architecture.md)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "phasekit"

MODALITIES = {"cdi", "ptycho", "tomo", "learn", "spi"}
#: what each package may import from phasekit (besides itself); the CLI may import anything
ALLOWED = {
    "core": set(),
    "operators": {"core"},
    "io": {"core"},
    "metrics": {"core"},
    "sim": {"core", "operators"},
    "engine": {"core", "io"},
    "plot": {"core", "io", "metrics"},
    **{m: {"core", "engine", "operators", "io", "metrics", "sim", "plot"} for m in MODALITIES},
}
# single-particle imaging is a pipeline over two modalities (CDI phasing, learn's k-means), the
# way the CLI is over all of them: it may use their public functions, nothing imports it
ALLOWED["spi"] = ALLOWED["spi"] | {"cdi", "learn"}


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if rel.parts else ""


def _imports(path: Path):
    """(target package, line) of every phasekit import in ``path`` (relative ones resolved)."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(SRC.parent).with_suffix("")
    pkg = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - node.level + 1]
                full = base + (node.module.split(".") if node.module else [])
                if not node.module:  # "from . import x, y"
                    for a in node.names:
                        yield (full + [a.name])[1] if len(full) == 1 else full[1], node.lineno
                    continue
            else:
                full = (node.module or "").split(".")
            if full[0] == "phasekit" and len(full) > 1:
                yield full[1], node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "phasekit" and len(parts) > 1:
                    yield parts[1], node.lineno


def test_imports_point_one_way():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        src_pkg = _package_of(path)
        if src_pkg in ("cli", "__init__", "__main__") or src_pkg not in ALLOWED:
            continue
        for tgt, line in _imports(path):
            tgt = tgt.removesuffix(".py")
            if tgt == src_pkg or tgt in ("__version__",):
                continue
            if tgt not in ALLOWED[src_pkg]:
                bad.append(f"{path.relative_to(SRC)}:{line} imports phasekit.{tgt}")
    assert not bad, "imports against the layout:\n" + "\n".join(bad)


def test_every_top_level_package_has_a_rule():
    pkgs = {p.name.removesuffix(".py") for p in SRC.iterdir()
            if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py")}
    pkgs -= {"__init__", "__main__", "cli", "py"}
    missing = sorted(p for p in pkgs if p not in ALLOWED)
    assert not missing, f"no import rule for {missing}: add them to ALLOWED"


def test_engine_imports_no_modality_until_asked():
    code = ("import sys, phasekit.engine as e; "
            "mods = [m for m in ('phasekit.cdi', 'phasekit.ptycho', 'phasekit.tomo', 'phasekit.learn') "
            "if m in sys.modules]; print(mods); "
            "e.get_algorithm('resire'); print('phasekit.tomo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second = out.stdout.split("\n")[:2]
    assert first == "[]"
    assert second == "True"


@pytest.mark.parametrize("module", ["phasekit", "phasekit.engine"])
def test_light_imports(module):
    """``import phasekit`` (and the engine) loads neither h5py, matplotlib nor dask."""
    code = (f"import sys, {module}; "
            "print([m for m in ('h5py', 'matplotlib', 'dask') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_functions_survive_the_registry():
    """Loading the registry imports the algorithm modules; those named like a public function
    (``phasekit.cdi.hio`` the module vs ``phasekit.cdi.hio()`` the function) must not replace
    it, whichever is imported first."""
    code = ("import phasekit.engine as e; e.available(); import phasekit.cdi as c, phasekit.tomo as t; "
            "import phasekit.ptycho as p; import types; print(all(isinstance(f, types.FunctionType) for f in "
            "(c.er, c.hio, c.raar, c.oss, c.gps, c.gps_r, t.fbp, p.pine, p.epie)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
