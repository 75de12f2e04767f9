"""The README and the docs pages as a reader meets them: every Python block runs on a CPU as written (the blocks
of one page in order, in one namespace, in a scratch folder), and every relative link (and its #anchor)
resolves."""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_the_pages_exist():
    assert {
        "README.md",
        "CONTRIBUTING.md",
        "docs/training.md",
        "docs/steps.md",
        "docs/stabilizers.md",
        "docs/distributed.md",
        "docs/study.md",
    } <= {_id(p) for p in PAGES}
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300


@pytest.mark.parametrize("page", [p for p in PAGES if FENCE.search(p.read_text())], ids=_id)
def test_every_python_block_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for i, block in enumerate(FENCE.findall(page.read_text())):
        try:
            exec(compile(block, f"{_id(page)} block {i + 1}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{_id(page)}, Python block {i + 1} fails: {type(exc).__name__}: {exc}") from exc


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as dashes."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_relative_link_resolves(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{_id(page)} links to {target}, which does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{_id(page)} links to #{anchor}, not a heading of {path or 'it'}"


def test_the_readme_quick_start_is_at_most_20_lines():
    readme = (ROOT / "README.md").read_text()
    quick = readme[readme.index("## Quick start") :]
    assert len(FENCE.search(quick).group(1).strip().splitlines()) <= 20
    assert os.path.isfile(ROOT / "LICENSE")


def test_train_help_names_every_mode_model_loss_and_data_set_the_config_accepts():
    """Each choice is named in its option's help text, not only in argparse's {a,b,...} list."""
    from fastgan import cli
    from fastgan.steps.modes import MODES
    from fastgan.train.config import MODELS
    from fastgan.train.data import IMAGE_SETS, TOY_SETS
    from fastgan.train.settings import RECIPE_NAMES

    train = next(a for a in cli._parser()._actions if a.dest == "command").choices["train"]
    helps = {a.dest: a.help for a in train._actions}
    for dest, accepted in (("mode", MODES), ("model", MODELS), ("loss", RECIPE_NAMES), ("data", TOY_SETS + IMAGE_SETS)):
        missing = [c for c in accepted if c not in helps[dest]]
        assert not missing, f"--{dest} help omits {missing}"
