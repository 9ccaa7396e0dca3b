"""The built site, for the tests that read it: built with the README's command when missing or older than its sources.

A build with nothing changed re-executes nothing (Jupyter Book's cache), so after ``.ci/run``'s build this costs a
few file dates.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
from jupyter_cache import get_cache
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
STAMP = HTML / ".buildinfo"  # Sphinx rewrites it at the end of every build
CACHE = ROOT / "_build" / ".jupyter_cache"  # execute_notebooks: cache in _config.yml
SOURCES = ("_config.yml", "_toc.yml", "book", "_static")
BUILD = [
    str(Path(sys.executable).with_name("jupyter-book")),
    "build",
    "--all",
    "-W",
    "--keep-going",
    ".",
]


def newest_source() -> float:
    """The modification time of the newest file the site is built from."""
    paths = [ROOT / name for name in SOURCES]
    files = [
        path
        for top in paths
        for path in ([top] if top.is_file() else top.rglob("*"))
        if path.is_file()
    ]
    return max(path.stat().st_mtime for path in files)


def ensure_built() -> Path:
    """Build the site unless ``_build/html`` is newer than every source; returns ``_build/html``."""
    if STAMP.exists() and STAMP.stat().st_mtime >= newest_source():
        return HTML
    build = subprocess.run(BUILD, cwd=ROOT, capture_output=True, text=True)
    assert build.returncode == 0, (
        f"{' '.join(BUILD)} failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    )
    return HTML


def chapters() -> list[Path]:
    """The chapter notebooks, in file order (which is reading order)."""
    return sorted((ROOT / "book").glob("*.ipynb"))


def executed_notebooks() -> dict[str, NotebookNode]:
    """Chapter file name -> the chapter with the outputs the site build executed, from Jupyter Book's cache.

    The cache, not ``_build/jupyter_execute``: a rebuild that takes every chapter from the cache writes those
    notebooks without outputs.
    """
    ensure_built()
    cache = get_cache(CACHE)
    executed = {}
    for path in chapters():
        _, merged = cache.merge_match_into_notebook(nbformat.read(path, as_version=4))
        executed[path.name] = merged
    return executed
