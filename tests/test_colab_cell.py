"""The Colab setup cell: the same in every chapter, installing `helpers` from the repository set in _config.yml."""

from __future__ import annotations

import re
import tomllib

import nbformat
import pytest
import yaml

from built_book import ROOT, chapters


def repository_url() -> str:
    """`repository.url` in _config.yml: the one place the repository is named."""
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def expected_cell() -> str:
    """The setup cell, built from `repository.url` in _config.yml and the package name in pyproject.toml."""
    url = repository_url()
    package = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    return (
        "# Colab setup: on Google Colab this installs the course's `helpers` package; anywhere else it does nothing.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install --quiet "{package} @ git+{url}"'
    )


def test_the_repository_url_is_a_github_repository():
    """Colab's launch links and `pip install git+...` both need a plain github.com repository URL."""
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repository_url())


def test_every_chapter_in_the_table_of_contents_is_a_notebook_here():
    """The notebooks in book/ are exactly the chapters _toc.yml lists (the pages besides them are markdown)."""
    listed = [entry["file"] for entry in yaml.safe_load((ROOT / "_toc.yml").read_text())["chapters"]]
    notebooks = [f"book/{path.stem}" for path in chapters()]
    assert notebooks == [name for name in listed if (ROOT / f"{name}.ipynb").exists()]
    assert all((ROOT / f"{name}.ipynb").exists() or (ROOT / f"{name}.md").exists() for name in listed)
    assert len(notebooks) >= 8


@pytest.mark.parametrize("path", chapters(), ids=lambda path: path.name)
def test_the_first_code_cell_is_the_colab_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    first_code = next(cell for cell in nb.cells if cell.cell_type == "code")
    assert first_code.source.strip() == expected_cell()
