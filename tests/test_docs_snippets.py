"""The complete Python examples of the README and docs/ run as printed and give what the text
around them says.

Only the quick ones run here (a few seconds each); the longer ones (docs/cdi.md's GPS run,
docs/ptychography.md's CRISP run, docs/tomography.md's RESIRE run) were run by hand when they
were written, and the fragments that need the reader's own data (``I``, ``support``, ``loader``)
are not complete programs.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _snippet(doc: str, marker: str) -> str:
    """The first ```python block of ``doc`` that contains ``marker``."""
    text = (ROOT / doc).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    hits = [b for b in blocks if marker in b]
    assert hits, f"{doc}: no python example containing {marker!r}"
    return hits[0]


def _run(code: str, tmp_path, monkeypatch) -> dict:
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__main__"}
    exec(compile(code, "<snippet>", "exec"), ns)  # noqa: S102 (the documentation's own code)
    return ns


def test_readme_python_example(tmp_path, monkeypatch):
    """README "Python": the vesicle from its pattern, support and mask; saved as CXI."""
    ns = _run(_snippet("README.md", "simulate_cdi(\"vesicle\""), tmp_path, monkeypatch)
    res, sim = ns["res"], ns["sim"]
    err = ns["relative_error"](res.image, sim.truth)
    assert math.isfinite(res.rfactor) and res.rfactor < 0.05
    assert err < 0.35
    assert (tmp_path / "result.cxi").stat().st_size > 0


def test_learn_kmeans_example(tmp_path, monkeypatch):
    """docs/learn.md: SBE on Iris reaches the objective the text quotes (~0.264-0.27), Lloyd's
    best of 10 starts 0.2628, and the warm-started SBE records its objective every step."""
    ns = _run(_snippet("docs/learn.md", "load_iris"), tmp_path, monkeypatch)
    assert 0.262 <= ns["sbe"].objective_ <= 0.272
    assert ns["lloyd"].objective_ == pytest.approx(0.2628, abs=5e-4)
    assert len(ns["labels"]) == len(ns["X"])
    assert len(ns["sbe2"].history_["objective"]) >= 5


def test_spi_simulator_example(tmp_path, monkeypatch):
    """docs/spi.md: any chunk of the simulated PR772-like set, alone."""
    ns = _run(_snippet("docs/spi.md", "SpiSimulator("), tmp_path, monkeypatch)
    assert len(ns["chunk"].frames) == 64


def _shell_commands():
    """Every ``phasekit`` command of the README's and docs/*.md's ```bash / ```sh blocks, in the
    order printed, as (document, argument list)."""
    import shlex

    out = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```(?:bash|sh)\n(.*?)```", doc.read_text(), flags=re.DOTALL):
            for line in block.splitlines():
                for part in line.split("&&"):
                    words = shlex.split(part, comments=True)
                    if words[:1] == ["phasekit"]:
                        out.append((doc.name, words[1:]))
    return out


def test_shell_commands_parse(tmp_path, monkeypatch):
    """The documents' shell commands name commands and options that exist, with values their
    types accept (click parses each without running it; the input files are empty stand-ins).
    Run in the order printed, no ``phasekit batch`` may write into a run directory an earlier
    one filled (README and docs/spi_batch.md both used ``run1``, so the second stopped with
    'already holds a batch run')."""
    import click

    from phasekit.cli.main import cli

    commands = _shell_commands()
    assert len(commands) > 40
    monkeypatch.chdir(tmp_path)
    for doc, args in commands:
        for w in args:
            if not w.startswith("-") and re.fullmatch(r"[\w.-]+\.\w+", w):
                (tmp_path / w).touch()
        cmd, ctx, name, rest = cli, None, "phasekit", list(args)
        try:
            while True:
                ctx = cmd.make_context(name, rest, parent=ctx)
                if not isinstance(cmd, click.Group):
                    break
                sub = getattr(ctx, "_protected_args", None)  # Click >= 8.2 (protected_args before)
                sub = ctx.protected_args if sub is None else sub
                name, cmd, rest = cmd.resolve_command(ctx, [*sub, *ctx.args])
        except click.ClickException as exc:
            pytest.fail(f"{doc}: phasekit {' '.join(args)}: {exc.format_message()}")
    batch_dirs = [a[a.index("-o") + 1] for _, a in commands if a[0] == "batch"]
    assert len(batch_dirs) == len(set(batch_dirs)), batch_dirs
