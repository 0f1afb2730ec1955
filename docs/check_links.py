"""Checks every internal link of the built site, offline.

Usage: ``python docs/check_links.py [docs/_build/html]``.

Every ``href``/``src`` of every HTML page that points inside the site must name
a file that exists and, when it has a ``#fragment`` into an HTML page, an element
with that ``id`` (or ``<a name>``) on that page. Links to other sites are not
fetched (the check runs offline); resources that a page would load from another
site (scripts, stylesheets, images, frames) are errors, because the pages must
work offline. Exits 1 listing every broken link.
"""

from __future__ import annotations

import html.parser
import pathlib
import sys
import time
import urllib.parse

RESOURCE_TAGS = {"script", "img", "iframe", "source", "video", "audio", "embed"}


class _Page(html.parser.HTMLParser):
  def __init__(self):
    super().__init__(convert_charrefs=True)
    self.ids: set[str] = set()
    self.links: list[tuple[str, str, str]] = []  # (tag, attribute, url)

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    for key in ("id",) + (("name",) if tag == "a" else ()):
      if attrs.get(key):
        self.ids.add(attrs[key])
    for key in ("href", "src"):
      if attrs.get(key) is not None:
        self.links.append((tag, key, attrs[key]))
    if tag == "link" and attrs.get("href") is not None:
      rel = (attrs.get("rel") or "").lower()
      self.links[-1] = ("link:" + rel, "href", attrs["href"])


def parse(path: pathlib.Path) -> _Page:
  page = _Page()
  page.feed(path.read_text(encoding="utf-8", errors="replace"))
  return page


def _pages(site: pathlib.Path) -> list[pathlib.Path]:
  """The site's pages; _static/ holds the theme's assets (and its template fragments), not pages."""
  return [p for p in sorted(site.rglob("*.html")) if "_static" not in p.relative_to(site).parts]


def check(site: pathlib.Path) -> tuple[list[str], int, int]:
  pages = {p.resolve(): parse(p) for p in _pages(site)}
  broken, internal, external = [], 0, 0
  for path, page in sorted(pages.items()):
    where = path.relative_to(site.resolve())
    for tag, attribute, url in page.links:
      parts = urllib.parse.urlsplit(url)
      if parts.scheme in ("mailto", "data", "javascript", "tel"):
        continue
      if parts.scheme or url.startswith("//"):
        external += 1
        loads = (
          tag in RESOURCE_TAGS
          or tag.startswith("link:")
          and any(r in tag for r in ("stylesheet", "preload", "icon", "modulepreload"))
        )
        if loads:
          broken.append(f"{where}: <{tag.split(':')[0]} {attribute}={url!r}> loads a resource from another site")
        continue
      internal += 1
      target = path if not parts.path else (path.parent / urllib.parse.unquote(parts.path)).resolve()
      if parts.path.endswith("/") or target.is_dir():
        target = target / "index.html"
      if not target.is_file():
        broken.append(f"{where}: {attribute}={url!r}: {target} does not exist")
        continue
      fragment = urllib.parse.unquote(parts.fragment)
      if fragment and target.suffix == ".html":
        ids = pages[target].ids if target in pages else parse(target).ids
        if fragment not in ids:
          broken.append(f"{where}: {attribute}={url!r}: no element with id {fragment!r} in {target.name}")
  return broken, internal, external


def main(argv: list[str]) -> int:
  site = pathlib.Path(argv[0] if argv else pathlib.Path(__file__).resolve().parent / "_build" / "html")
  if not (site / "index.html").is_file():
    print(f"{site} has no index.html: build the site first", file=sys.stderr)
    return 1
  started = time.perf_counter()
  broken, internal, external = check(site)
  seconds = time.perf_counter() - started
  for line in broken:
    print("BROKEN", line, file=sys.stderr)
  pages = len(_pages(site))
  print(
    f"{pages} pages, {internal} internal links checked, {external} links to other sites not fetched; "
    f"{len(broken)} broken ({seconds:.1f} s)"
  )
  return 1 if broken else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
