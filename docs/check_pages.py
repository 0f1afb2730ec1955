"""Checks that built pages show their content in a real browser (headless Chromium).

Usage: ``python docs/check_pages.py [docs/_build/html]``.

Serves the built site on 127.0.0.1 (a free port), drives Chromium through
Selenium and ``chromedriver`` (Debian's ``chromium`` and ``chromium-driver``
packages; ``CHROMIUM`` and ``CHROMEDRIVER`` override their paths), and checks
what a reader sees:

* the index shows the project's title;
* the API page of ``parewire_jax.rewired`` shows its signature and its example;
* the quickstart notebook shows its title and rendered figures from its committed
  outputs;
* the "how it works" guide shows the strength histograms drawn at build time, and
  the performance guide the scaling plot;
* no page logs a browser error (a script or stylesheet that failed to load, a
  JavaScript exception).

A figure counts as rendered when its ``<img>`` finished loading with a
``naturalWidth`` > 0. Screenshots of every checked page go to
``<site>/../screenshots/``. Exits 1 if any check fails.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import pathlib
import re
import shutil
import sys
import tempfile
import threading
import time

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM_FLAGS = (
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--window-size=1280,1600",
)
PAGE_LOAD_SECONDS = 30

# Images that finished loading and have pixels, inside the page's main content.
RENDERED_IMAGES = """
const main = document.querySelector('main') || document.body;
return Array.from(main.querySelectorAll(arguments[0])).map(img => ({
  src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth}));
"""


def _normalise(text: str) -> str:
  return re.sub(r"\s+", " ", text).strip()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
  def log_message(self, format, *args):  # noqa: A002
    pass


@contextlib.contextmanager
def serve(site: pathlib.Path):
  """The site over HTTP on 127.0.0.1; yields the base URL."""
  handler = functools.partial(_QuietHandler, directory=str(site))
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield f"http://127.0.0.1:{server.server_address[1]}/"
  finally:
    server.shutdown()
    server.server_close()


def _find(name: str, env: str) -> str:
  import os

  path = os.environ.get(env) or shutil.which(name)
  if not path:
    raise SystemExit(f"{name} not found: apt-get install chromium chromium-driver (or set {env})")
  return path


@contextlib.contextmanager
def chromium(profile: pathlib.Path):
  options = webdriver.ChromeOptions()
  options.binary_location = _find("chromium", "CHROMIUM")
  for flag in CHROMIUM_FLAGS:
    options.add_argument(flag)
  options.add_argument(f"--user-data-dir={profile}")
  options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
  driver = webdriver.Chrome(options=options, service=Service(executable_path=_find("chromedriver", "CHROMEDRIVER")))
  driver.set_page_load_timeout(PAGE_LOAD_SECONDS)
  try:
    yield driver
  finally:
    driver.quit()


class Checker:
  def __init__(self, driver, base_url: str, shots: pathlib.Path):
    self.driver, self.base_url, self.shots = driver, base_url, shots
    self.failures: list[str] = []
    self.passed = 0

  def expect(self, ok: bool, what: str, detail: str = "") -> None:
    if ok:
      self.passed += 1
      print(f"  ok    {what}")
    else:
      self.failures.append(f"{what}{': ' + detail if detail else ''}")
      print(f"  FAIL  {what}{': ' + detail if detail else ''}")

  def open(self, path: str) -> None:
    print(path)
    self.driver.get(self.base_url + path)
    WebDriverWait(self.driver, PAGE_LOAD_SECONDS).until(
      lambda d: d.execute_script("return document.readyState") == "complete"
    )

  def wait_for(self, find, seconds: float):
    """Polls ``find()`` until it returns something truthy or ``seconds`` pass; returns its last value."""
    deadline = time.monotonic() + seconds
    while not (found := find()) and time.monotonic() < deadline:
      time.sleep(0.2)
    return found

  def visible_text(self, by, selector) -> str:
    elements = [e for e in self.driver.find_elements(by, selector) if e.is_displayed()]
    return _normalise(" ".join(e.text for e in elements))

  def images(self, selector: str, min_count: int, what: str) -> None:
    """At least ``min_count`` images matching ``selector`` in <main> loaded with pixels."""

    def state():
      found = self.driver.execute_script(RENDERED_IMAGES, selector)
      return found, [i for i in found if i["complete"] and i["width"] > 0]

    self.wait_for(lambda: len(state()[1]) >= min_count, seconds=10)
    found, rendered = state()
    self.expect(
      len(rendered) >= min_count,
      f"{what}: {len(rendered)} of {len(found)} <img> rendered (naturalWidth > 0), need {min_count}",
      ", ".join(f"{i['src']} width={i['width']}" for i in found if i not in rendered),
    )

  def no_browser_errors(self, name: str) -> None:
    # Chromium asks for /favicon.ico on its own; the site has none.
    errors = [
      e["message"]
      for e in self.driver.get_log("browser")
      if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]
    ]
    self.expect(not errors, "no errors in the browser console", "; ".join(errors))
    self.driver.save_screenshot(str(self.shots / f"{name}.png"))


def run_checks(checker: Checker) -> None:
  d = checker.driver

  checker.open("index.html")
  checker.expect("parewire_jax" in d.title, f"the window title names the project ({d.title!r})")
  heading = checker.visible_text(By.CSS_SELECTOR, "main h1")
  checker.expect(heading == "parewire_jax", f"the page shows the title 'parewire_jax' (h1: {heading!r})")
  checker.expect(
    "Preferential-attachment weight rewiring" in checker.visible_text(By.CSS_SELECTOR, "main"),
    "the page shows the project's one-line description",
  )
  checker.no_browser_errors("index")

  checker.open("api/generated/parewire_jax.rewired.html")
  signature = checker.visible_text(By.ID, "parewire_jax.rewired")
  # Sphinx puts a long signature one parameter a line; compare with the spacing and the trailing comma removed.
  compact = signature.replace(" ", "").replace(",)", ")")
  checker.expect(
    "rewired(base_init,*,out_axis=-1,batch_axis=(),passes=('in','out'),offset=1.0,scale_free=False)" in compact,
    "the signature rewired(base_init, *, out_axis=-1, ...) is shown",
    repr(signature),
  )
  examples = checker.visible_text(By.CSS_SELECTOR, "main div.doctest pre, main div.highlight-pycon pre")
  checker.expect(
    ">>> init = rewired(orthogonal())" in examples,
    "the doctested example (>>> init = rewired(orthogonal())) is shown",
    repr(examples[:200]),
  )
  checker.expect(
    "PA-rewires the output of base_init" in checker.visible_text(By.CSS_SELECTOR, "main"),
    "the docstring is shown",
  )
  checker.no_browser_errors("api_rewired")

  checker.open("notebooks/01_quickstart.html")
  heading = checker.visible_text(By.CSS_SELECTOR, "main h1")
  checker.expect(heading.startswith("parewire_jax quickstart"), f"the notebook shows its title (h1: {heading!r})")
  checker.images("div.cell_output img", 3, "the notebook's committed figures")
  checker.no_browser_errors("notebook_01_quickstart")

  checker.open("guides/how_it_works.html")
  checker.images("figure img[src*='strength_histograms']", 1, "the Fig. 1b strength histograms drawn at build")
  typeset = checker.wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "main mjx-container"), seconds=15)
  checker.expect(len(typeset) >= 3, f"the equations are typeset by MathJax, served by the site ({len(typeset)} found)")
  checker.no_browser_errors("guide_how_it_works")

  checker.open("guides/performance.html")
  checker.images("img[src*='scaling_cpu']", 1, "the scaling plot from benchmarks/")
  checker.no_browser_errors("guide_performance")


def main(argv: list[str]) -> int:
  site = pathlib.Path(argv[0] if argv else pathlib.Path(__file__).resolve().parent / "_build" / "html").resolve()
  if not (site / "index.html").is_file():
    print(f"{site} has no index.html: build the site first", file=sys.stderr)
    return 1
  shots = site.parent / "screenshots"
  shots.mkdir(exist_ok=True)
  started = time.perf_counter()
  with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, serve(site) as base_url:
    try:
      with chromium(pathlib.Path(profile)) as driver:
        print(f"{driver.capabilities.get('browserName')} {driver.capabilities.get('browserVersion')} on {base_url}")
        checker = Checker(driver, base_url, shots)
        run_checks(checker)
    except WebDriverException as error:
      print(f"FAIL  the browser could not be driven: {error.msg}", file=sys.stderr)
      return 1
  seconds = time.perf_counter() - started
  print(f"{checker.passed} checks passed, {len(checker.failures)} failed ({seconds:.1f} s); screenshots in {shots}")
  for failure in checker.failures:
    print(f"FAILED: {failure}", file=sys.stderr)
  return 1 if checker.failures else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
