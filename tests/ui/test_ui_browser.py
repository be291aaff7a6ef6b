"""The web UI in a real headless browser (Debian's chromium and chromium-driver, through
selenium): every page loads against an archive filled by a simulated run, the grid and charts
render, the hostile log stays text, and a second process's writes show up on a refresh.

One archive, one ``evolve ui`` server process and one browser for the whole module. Set
``EVOLVE_UI_SCREENSHOTS=DIR`` to keep the screenshots there (``docs/ui/`` holds the README's).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from archive import Archive

from .data import SCRIPT, Filled, fill

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                       reason="needs Debian's chromium and chromium-driver (bash .ci/chromium.sh installs them)"),
]
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the [test] extra)")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402

SIZE = (1280, 800)


@dataclass(frozen=True)
class Site:
    url: str
    db: str
    sim_run: int
    filled: Filled
    shots: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A simulated search's archive (fixed-time verdicts: no interpreter, so it takes seconds),
    plus ``data.fill``'s run, served by a real ``evolve ui`` process."""
    tmp = tmp_path_factory.mktemp("ui-browser")
    db = str(tmp / "evolve.db")
    config = tmp / "fixed.toml"
    config.write_text("[evaluation]\nfixed_eval_s = 0.02\nworkers = 2\n")
    r = subprocess.run([sys.executable, "-m", "evolve", "run", "--simulate", "--budget", "64", "--db", db, "--quiet",
                        "--random-seed", "3", "--config", str(config)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    with Archive.open(db, create=False) as archive:
        filled = fill(archive)
    proc = subprocess.Popen([sys.executable, "-m", "evolve", "ui", "--db", db, "--port", "0"], stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert match, line
        shots = Path(os.environ.get("EVOLVE_UI_SCREENSHOTS") or tmp / "screenshots")
        shots.mkdir(parents=True, exist_ok=True)
        yield Site(match.group(1), db, 1, filled, shots)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={SIZE[0]},{SIZE[1]}", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def visit(browser: WebDriver, site: Site, path: str) -> None:
    browser.get(site.url + path)
    assert browser.find_element(By.TAG_NAME, "h1").text, path
    assert not browser.find_elements(By.ID, "error"), browser.find_element(By.ID, "error").text


def screenshot(browser: WebDriver, site: Site, name: str, scroll_to: str | None = None) -> Path:
    if scroll_to is not None:
        browser.execute_script("document.getElementById(arguments[0]).scrollIntoView()", scroll_to)
    path = site.shots / f"{name}.png"
    assert browser.save_screenshot(str(path))
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000  # an image with something drawn on it
    return path


def test_every_page_loads(browser: WebDriver, site: Site) -> None:
    visit(browser, site, "/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs tr.run")
    assert {r.get_attribute("data-run") for r in rows} == {str(site.sim_run), str(site.filled.pop.run)}
    screenshot(browser, site, "runs")
    with Archive.open(site.db, create=False) as archive:
        programs = archive.program_ids(site.sim_run)[:5] + archive.program_ids(site.filled.pop.run)
    for run in (site.sim_run, site.filled.pop.run):
        visit(browser, site, f"/runs/{run}")
    assert browser.find_elements(By.CSS_SELECTOR, "#models tr.model")  # the filled run's LLM credit
    screenshot(browser, site, "run-operators", scroll_to="operators")
    for program in programs:
        visit(browser, site, f"/programs/{program}")
        assert browser.find_element(By.CSS_SELECTOR, "#source .highlight").is_displayed()


def test_the_grid_renders_and_its_cells_lead_to_their_elites(browser: WebDriver, site: Site) -> None:
    visit(browser, site, f"/runs/{site.sim_run}")
    with Archive.open(site.db, create=False) as archive:
        view = archive.grid(site.sim_run)
    filled = sum(v is not None for row in view.fitness for v in row)
    squares = browser.find_elements(By.CSS_SELECTOR, "svg.heatmap rect.cell")
    assert len(squares) == len(view.x.labels) * len(view.y.labels)  # type: ignore[union-attr]
    elites = browser.find_elements(By.CSS_SELECTOR, "svg.heatmap rect.cell.filled")
    assert len(elites) == filled > 0
    assert all(e.size["width"] > 20 and e.size["height"] > 20 for e in elites)  # laid out, not collapsed
    points = browser.find_elements(By.CSS_SELECTOR, "svg.line circle.point")
    with Archive.open(site.db, create=False) as archive:
        generations = archive.generation_stats(site.sim_run)
    assert len(points) == 2 * len(generations) > 0
    screenshot(browser, site, "run")
    screenshot(browser, site, "run-charts", scroll_to="progress-charts")
    program = elites[0].get_attribute("data-program")
    elites[0].click()
    assert browser.current_url == f"{site.url}/programs/{program}"
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith(f"Program {program}")


def test_the_speed_chart_shows_a_bar_per_shape(browser: WebDriver, site: Site) -> None:
    with Archive.open(site.db, create=False) as archive:
        best = archive.top(site.sim_run, 1)[0].program_id
        timings = archive.evaluations(best)[-1].timings
    visit(browser, site, f"/programs/{best}")
    bars = browser.find_elements(By.CSS_SELECTOR, "svg.shapes rect.bar.candidate")
    assert len(bars) == len(timings) > 0 and all(b.size["width"] > 0 for b in bars)
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.shapes g.interval")) == len(timings)
    screenshot(browser, site, "program", scroll_to="speed")
    screenshot(browser, site, "program-source", scroll_to="source")


def test_a_hostile_log_and_answer_show_as_text(browser: WebDriver, site: Site) -> None:
    visit(browser, site, f"/programs/{site.filled.hostile}")
    assert browser.execute_script("return window.__pwned === undefined && document.scripts.length === 0")
    assert browser.title != "pwned"
    assert SCRIPT in browser.find_element(By.ID, "log-text").text
    assert SCRIPT in browser.find_element(By.CSS_SELECTOR, ".llm-call pre.answer").text
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main b")
    screenshot(browser, site, "program-log", scroll_to="log")


def test_a_second_process_writing_to_the_archive_shows_on_refresh(browser: WebDriver, site: Site) -> None:
    visit(browser, site, "/")
    assert "written by another process" not in browser.page_source
    writer = textwrap.dedent(f"""
        from archive import Archive
        with Archive.open({site.db!r}, create=False) as a:
            run = a.create_run("mha_fwd", {{}}, simulated=True, name="written by another process",
                               budget={{"candidates": 8}})
            a.add_program(run, "def forward(q, k, v, causal, sm_scale):\\n    return q\\n", operator="seed")
            print(run)
    """)
    r = subprocess.run([sys.executable, "-c", writer], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    run = int(r.stdout)
    browser.refresh()
    row = browser.find_element(By.CSS_SELECTOR, f'#runs tr.run[data-run="{run}"]')
    assert "written by another process" in row.text and "running" in row.text
    assert browser.find_element(By.ID, "live").is_displayed()  # a running run: the page refreshes itself
