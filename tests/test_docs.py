"""The README and docs/ stay true to the code: links resolve, commands parse, sampler specs build, Python runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from latentatlas.cli import build_parser
from latentatlas.latent.samplers import build_sampler

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(text: str, language: str) -> list[str]:
    """The fenced code blocks of one language in a Markdown text."""
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _commands(text: str) -> list[list[str]]:
    """Each `latentatlas ...` command of the bash blocks, as argv without the program name.

    Comments go, a `;` separates commands, and optional parts in brackets (`[--resume]`) are dropped.
    """
    commands = []
    for block in _blocks(text, "bash"):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line)
            line = re.sub(r"\[[^\]]*\]", "", line)
            for part in line.split(";"):
                words = shlex.split(part)
                if words[:1] == ["latentatlas"]:
                    commands.append(words[1:])
    return commands


def test_the_pages_exist_and_hold_commands():
    assert len(PAGES) >= 5, [p.name for p in PAGES]
    assert sum(len(_commands(p.read_text())) for p in PAGES) >= 25


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_at_files(page):
    text = page.read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing = [t for t in targets if "://" not in t and not (page.parent / t).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_documented_commands_parse(page):
    parser = build_parser()
    for argv in _commands(page.read_text()):
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{page.name}: `latentatlas {' '.join(argv)}` does not parse")


def test_every_sampler_spec_in_the_table_builds():
    text = (ROOT / "docs" / "sampling-and-scoring.md").read_text()
    table = text.split("## Samplers", 1)[1].split("\n## ", 1)[0]
    specs = [s.replace("\\|", "|") for row in re.findall(r"^\| (`.*?) \|", table, flags=re.M)
             for s in re.findall(r"`([^`]+)`", row)]
    assert len(specs) >= 12, specs
    for spec in specs:
        build_sampler(spec)          # raises on an unknown sampler or setting


def test_the_python_example_runs():
    block, = _blocks((ROOT / "docs" / "models.md").read_text(), "python")
    import torch

    z_train = torch.randn(200, 64, generator=torch.Generator().manual_seed(0))
    scope = {"z_train": z_train}
    exec(compile(block, "docs/models.md", "exec"), scope)
    assert scope["images"].shape == (64, 1, 28, 28)
    assert 0.0 <= float(scope["images"].min()) and float(scope["images"].max()) <= 1.0
