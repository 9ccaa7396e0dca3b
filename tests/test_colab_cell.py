"""The Colab setup cell: the same in every chapter, installing the release that pyproject.toml names.

pyproject.toml's ``name`` and ``version`` are the one place a release is set; every chapter's first code cell is
built from them. After bumping the version, ``python tests/test_colab_cell.py`` rewrites the cell in every chapter.
"""

from __future__ import annotations

import re
import tomllib

import nbformat
import pytest
import yaml
from built_book import ROOT, chapters

SETUP_CELL = """# Colab setup: on Google Colab, install the course's package; elsewhere, do nothing.
import subprocess
import sys

COURSE_PACKAGE = "{spec}"  # pyproject.toml's name and version
if "google.colab" in sys.modules:
    pip = [sys.executable, "-m", "pip", "install", "--quiet", COURSE_PACKAGE]
    installed = subprocess.run(pip, capture_output=True, text=True)
    if installed.returncode != 0:  # stop here, not at "No module named 'helpers'"
        error = installed.stderr[-3000:]
        raise RuntimeError(f"pip could not install {{COURSE_PACKAGE}}:\\n{{error}}")"""


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def release() -> str:
    """The pip requirement of this release, ``name==version``, from pyproject.toml."""
    return f"{project()['name']}=={project()['version']}"


def repository_url() -> str:
    """`repository.url` in _config.yml, which the book's Colab and repository buttons use."""
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def expected_cell() -> str:
    return SETUP_CELL.format(spec=release())


def first_code_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return next(cell for cell in notebook.cells if cell.cell_type == "code")


def test_the_repository_url_is_a_github_repository_named_once_more_in_pyproject():
    """Colab's launch links need a plain github.com repository URL; the package's Homepage is the same one."""
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repository_url())
    assert project()["urls"]["Homepage"] == repository_url()


def test_the_readme_installs_this_release():
    assert f"pip install {release()}" in (ROOT / "README.md").read_text()


def test_every_chapter_in_the_table_of_contents_is_a_notebook_here():
    """The notebooks in book/ are exactly the chapters _toc.yml lists (the pages besides them are markdown)."""
    listed = [
        entry["file"]
        for entry in yaml.safe_load((ROOT / "_toc.yml").read_text())["chapters"]
    ]
    notebooks = [f"book/{path.stem}" for path in chapters()]
    assert notebooks == [name for name in listed if (ROOT / f"{name}.ipynb").exists()]
    assert all(
        (ROOT / f"{name}.ipynb").exists() or (ROOT / f"{name}.md").exists()
        for name in listed
    )
    assert len(notebooks) >= 8


@pytest.mark.parametrize("path", chapters(), ids=lambda path: path.name)
def test_the_first_code_cell_is_the_colab_setup_cell(path):
    cell = first_code_cell(nbformat.read(path, as_version=4))
    assert cell.source.strip() == expected_cell(), (
        f"run `python tests/test_colab_cell.py` to update {path.name}"
    )
    assert all(len(line) <= 88 for line in cell.source.splitlines())


def test_the_setup_cell_stops_the_notebook_when_the_install_fails(monkeypatch):
    """On Colab (faked), a failing pip raises with pip's own message instead of printing it and going on."""
    import subprocess
    import sys
    import types

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    failed = subprocess.CompletedProcess(
        [], 1, "", "ERROR: No matching distribution found"
    )
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: failed)
    with pytest.raises(
        RuntimeError,
        match=rf"pip could not install {re.escape(release())}:\nERROR: No matching",
    ):
        exec(expected_cell(), {})


if __name__ == "__main__":
    for path in chapters():
        notebook = nbformat.read(path, as_version=4)
        first_code_cell(notebook).source = expected_cell()
        nbformat.write(notebook, path)
        print(f"{path.name}: setup cell installs {release()}")
