"""Every chapter ends with "Further reading": citation roles whose keys are in book/references.bib, rendered by
sphinxcontrib-bibtex as footnotes of that page. The site build (``built_book.py``) checks that they render without
warnings; these tests check the sources, without building."""

from __future__ import annotations

import re

import nbformat
import pytest
import yaml
from built_book import ROOT, chapters
from pybtex.database import BibliographyData, parse_file

BIB = ROOT / "book" / "references.bib"
CITATION_ROLE = re.compile(
    r"\{(?:foot)?cite(?::\w+)?\}`([^`]+)`"
)  # {footcite}`a,b`, {cite:t}`a`
MARKDOWN_FOOTNOTE = re.compile(
    r"\[\^[^\]\s]+\]"
)  # [^label], a reference or a definition

# The papers the chapters stand on, and those the later chapters (ControlNet, LoRA, SDXL, SD3) will cite.
REQUIRED_KEYS = {
    "ho2020ddpm",
    "song2021ddim",
    "rombach2022ldm",
    "radford2021clip",
    "ho2022cfg",
    "liu2022pndm",
    "lu2022dpmsolverpp",
    "karras2022edm",
    "meng2022sdedit",
    "kingma2014vae",
    "ronneberger2015unet",
    "vaswani2017attention",
    "salimans2022progressive",
    "lin2024flawed",
    "hu2022lora",
    "gal2023textual",
    "zhang2023controlnet",
    "podell2024sdxl",
    "esser2024sd3",
    "lipman2023flow",
    "liu2023rectified",
    "sennrich2016bpe",
    "dao2022flashattention",
    "raffel2020t5",
    "cherti2023openclip",
}


@pytest.fixture(scope="module")
def bibliography() -> BibliographyData:
    return parse_file(str(BIB))  # pybtex raises on a syntax error or a duplicate key


def test_the_bib_file_holds_the_papers_the_book_relies_on(bibliography):
    assert set(bibliography.entries) >= REQUIRED_KEYS, (
        f"missing: {sorted(REQUIRED_KEYS - set(bibliography.entries))}"
    )


def test_every_entry_has_authors_a_title_a_year_and_a_place_to_find_it(bibliography):
    for key, entry in bibliography.entries.items():
        assert entry.persons.get("author"), f"{key}: no author"
        assert {"title", "year"} <= set(entry.fields), f"{key}: no title or year"
        assert re.fullmatch(r"(19|20)\d\d", entry.fields["year"]), (
            f"{key}: year {entry.fields['year']!r}"
        )
        where = {"eprint", "doi", "url", "booktitle", "journal", "institution"} & set(
            entry.fields
        )
        assert where, f"{key}: neither an arXiv id, a DOI, a URL nor a venue"


def test_the_book_configuration_loads_the_bib_file():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert [ROOT / path for path in config["bibtex_bibfiles"]] == [BIB]


@pytest.mark.parametrize("path", chapters(), ids=lambda path: path.stem)
def test_every_chapter_ends_with_further_reading_that_cites_known_papers(
    path, bibliography
):
    cell = nbformat.read(path, as_version=4).cells[-1]
    assert cell.cell_type == "markdown" and cell.source.startswith(
        "## Further reading"
    ), f"{path.name}: the last cell should be the markdown cell '## Further reading'"
    keys = [
        key.strip()
        for keys in CITATION_ROLE.findall(cell.source)
        for key in keys.split(",")
    ]
    assert keys, f"{path.name}: 'Further reading' cites nothing"
    unknown = sorted(set(keys) - set(bibliography.entries))
    assert not unknown, f"{path.name}: keys not in {BIB.name}: {unknown}"
    if "{footcite" in cell.source:
        assert "```{footbibliography}" in cell.source, (
            f"{path.name}: footnote citations with no footbibliography"
        )


def test_a_citation_role_with_an_unknown_key_is_caught(bibliography):
    keys = CITATION_ROLE.findall(
        "Latent diffusion {footcite}`rombach2022ldm,nobody1999`."
    )
    assert keys == ["rombach2022ldm,nobody1999"]
    assert set(keys[0].split(",")) - set(bibliography.entries) == {"nobody1999"}


def test_the_book_has_no_markdown_footnotes():
    """_config.yml suppresses MyST's footnote warnings (MyST-Parser 3 mistakes {footcite}'s footnotes for Markdown
    ones), which would also hide a broken Markdown footnote: so the book uses none."""
    sources = {path.name: path.read_text() for path in (ROOT / "book").glob("*.md")}
    for path in chapters():
        cells = nbformat.read(path, as_version=4).cells
        sources[path.name] = "\n".join(
            cell.source for cell in cells if cell.cell_type == "markdown"
        )
    offenders = {
        name: MARKDOWN_FOOTNOTE.findall(text) for name, text in sources.items()
    }
    assert not {name: found for name, found in offenders.items() if found}
