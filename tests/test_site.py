"""The built site in a real headless Chromium (Debian's chromium and chromium-driver), served over http on loopback.

Every chapter page loads, shows every image, links to its own notebook on Colab, hides the exercises' solutions until
clicked, and renders its math. A full-page screenshot of each page goes to _build/screenshots/ for a person to look at.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from built_book import ROOT, chapters, ensure_built, executed_notebooks
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
WIDTH, HEIGHT, MAX_HEIGHT = (
    1280,
    900,
    16000,
)  # pixels; Chromium draws no taller page than about 16k
# Math that MathJax has not typeset yet: Sphinx marks math with the class "math"; MathJax puts an mjx-container in it.
MATH_LEFT = "document.querySelectorAll('.math:not(:has(mjx-container))').length"
PAGES = [path.relative_to(ROOT).with_suffix("") for path in chapters()] + [
    Path("book/intro"),
    Path("book/instructors"),
]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging every request to the test output."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The built site served at http://127.0.0.1:<port>, so that its relative links and scripts work."""
    html = ensure_built()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=html)
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium driven through Debian's chromedriver: Selenium downloads nothing."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_window_size(WIDTH, HEIGHT)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(browser: WebDriver, script: str, seconds: float = 60) -> bool:
    """Wait until the JavaScript ``script`` returns true; False if it has not after ``seconds``."""
    try:
        WebDriverWait(browser, seconds).until(lambda b: b.execute_script(script))
        return True
    except TimeoutException:
        return False


def open_page(browser: WebDriver, site: str, page: Path) -> None:
    """Load a page and give its images and math time to settle (the tests then say what did not)."""
    browser.get(f"{site}/{page.as_posix()}.html")
    wait_for(browser, "return document.readyState === 'complete'")
    browser.execute_script(
        "window.scrollTo(0, document.body.scrollHeight); window.scrollTo(0, 0);"
    )
    wait_for(browser, "return Array.from(document.images).every(img => img.complete)")
    wait_for(browser, f"return {MATH_LEFT} === 0")


def screenshot(browser: WebDriver, name: str) -> Path:
    """A full-page PNG of the current page in _build/screenshots/ (the window stretched to the page's height)."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(WIDTH, min(height, MAX_HEIGHT))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    path.write_bytes(browser.get_screenshot_as_png())
    browser.set_window_size(WIDTH, HEIGHT)
    return path


def colab_link(page: Path) -> str:
    """Where a chapter's "Open in Colab" button must point: its notebook in the repository named in _config.yml."""
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    github = repository["url"].removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{github}/blob/{repository['branch']}/{page.as_posix()}.ipynb"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_page_loads_with_every_image_and_its_math(browser, site, page):
    open_page(browser, site, page)
    heading = browser.find_element(By.CSS_SELECTOR, "article h1").text
    if re.fullmatch(r"\d\d_.*", page.name):
        assert heading.startswith(f"{int(page.name[:2])}. "), heading
    broken = browser.execute_script(
        "return Array.from(document.images).filter(img => !(img.naturalWidth > 0)).map(img => img.src)"
    )
    assert broken == [], f"broken images on {page}"
    assert browser.execute_script(f"return {MATH_LEFT}") == 0, (
        f"math left as TeX on {page}"
    )
    assert Image.open(screenshot(browser, page.name)).format == "PNG"


@pytest.mark.parametrize("page", PAGES[:-2], ids=lambda page: page.name)
def test_chapter_opens_its_own_notebook_in_colab(browser, site, page):
    open_page(browser, site, page)
    links = {
        a.get_attribute("href")
        for a in browser.find_elements(By.CSS_SELECTOR, "a[href*='colab.research']")
    }
    assert links == {colab_link(page)}
    assert (ROOT / page).with_suffix(".ipynb").is_file()


@pytest.mark.parametrize("page", PAGES[:-2], ids=lambda page: page.name)
def test_solutions_are_hidden_until_clicked(browser, site, page):
    open_page(browser, site, page)
    solutions = browser.find_elements(By.CSS_SELECTOR, "div.solution")
    assert len(solutions) >= 3
    for solution in solutions:
        content = solution.find_elements(
            By.CSS_SELECTOR, ":scope > :not(.admonition-title)"
        )
        assert content and not any(part.is_displayed() for part in content)
        browser.execute_script(
            "arguments[0].scrollIntoView({block: 'center'});", solution
        )
        # sphinx-togglebutton puts a toggle button in the title of each dropdown; clicking it opens the dropdown.
        solution.find_element(By.CSS_SELECTOR, "button.toggle-button").click()
        code = solution.find_elements(By.CSS_SELECTOR, "div.cell_input")
        assert code  # the solution's code cells are inside the dropdown
        WebDriverWait(browser, 10).until(
            lambda _, code=code: all(block.is_displayed() for block in code)
        )


@pytest.mark.parametrize("page", PAGES[:-2], ids=lambda page: page.name)
def test_animations_on_the_page_are_animated(site, page):
    """Every GIF a chapter shows has more than one frame (read from the built site's files)."""
    html = (ensure_built() / page).with_suffix(".html")
    for source in re.findall(r'<img[^>]+src="([^"]+\.gif)"', html.read_text()):
        assert Image.open(html.parent / source).n_frames > 1, source


@pytest.fixture(scope="module")
def executed() -> dict:
    """Chapter file name -> the chapter as the site build executed it."""
    return executed_notebooks()


@pytest.mark.parametrize("page", PAGES[:-2], ids=lambda page: page.name)
def test_displayed_tables_are_html_tables(executed, page):
    """Each table a cell displays as Markdown (``display(markdown_table(...))``) is an HTML table on the page, not a
    paragraph of pipes (myst-nb reads Markdown outputs as CommonMark, which has no tables, unless told otherwise)."""
    shown = sum(
        output.get("data", {}).get("text/markdown", "").startswith("|")
        for cell in executed[f"{page.name}.ipynb"].cells
        for output in cell.get("outputs", [])
    )
    html = (ensure_built() / page).with_suffix(".html").read_text()
    assert re.findall(r"<p>\|[^<]{0,80}", html) == []
    assert html.count("<table") >= shown


OPEN_SOLUTIONS = (
    "document.querySelectorAll('button.toggle-button').forEach(b => b.click());"
)
# Each code cell's input that is wider than its box: its first line, and both widths in pixels.
WIDE_CODE = """
return Array.from(document.querySelectorAll('div.cell_input pre'))
  .filter(pre => pre.scrollWidth > pre.clientWidth)
  .map(pre => [pre.textContent.split('\\n')[0], pre.scrollWidth, pre.clientWidth]);
"""


@pytest.mark.parametrize("page", PAGES[:-2], ids=lambda page: page.name)
def test_no_code_cell_scrolls_sideways(browser, site, page):
    """In a 1280-px window every code cell fits its column, solutions' included (ruff formats at 88 columns;
    _static/code-width.css makes the column that wide)."""
    open_page(browser, site, page)
    browser.execute_script(OPEN_SOLUTIONS)
    wait_for(browser, "return !document.querySelector('.toggle-hidden')", 10)
    assert browser.execute_script(WIDE_CODE) == []
