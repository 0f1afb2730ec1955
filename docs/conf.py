"""Sphinx configuration of the parewire_jax documentation.

Build and check everything with ``bash .ci/docs``; the build alone is

    python -m sphinx -W --keep-going -n -b html docs docs/_build/html

The API reference documents the public names through ``parewire_jax`` and
``parewire_jax.experiments`` (their ``__all__``), never through submodules.
Notebooks are rendered from their committed outputs, never executed here.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import pathlib
import shutil
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document this checkout, whatever else is installed
os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the plot directive draws on the CPU

import parewire_jax  # noqa: E402
import parewire_jax.experiments  # noqa: E402

project = "parewire_jax"
author = "parewire_jax developers"
copyright = "2026, parewire_jax developers"  # noqa: A001
release = version = parewire_jax.__version__

extensions = [
  "sphinx.ext.autodoc",
  "sphinx.ext.autosummary",
  "sphinx.ext.napoleon",
  "sphinx.ext.mathjax",
  "sphinx.ext.viewcode",
  "matplotlib.sphinxext.plot_directive",
  "myst_nb",
  "sphinx_copybutton",
  "sphinx_design",
  "sphinx-mathjax-offline",  # serves MathJax from _static: the pages need no network
]

root_doc = "index"
templates_path = ["_templates"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "_generated", "plots", "**/.ipynb_checkpoints"]

# --- cross-references ------------------------------------------------------------
# Every reference to a parewire_jax object must resolve (nitpicky, -n). The build
# runs offline, so there are no intersphinx inventories of Python, NumPy, JAX, Flax
# or optax: references to *their* objects (mostly type hints) are the only ones left
# unchecked, listed here by package.
_EXTERNAL = r"(builtins|collections|dataclasses|typing|types|os|pathlib|numpy|np|jax|jaxlib|flax|nn|optax|chex)(\..+)?"
_BUILTINS = r"(int|float|str|bool|bytes|object|tuple|list|dict|set|None|type|callable|Ellipsis)"
nitpick_ignore_regex = [
  (r"py:.*", _EXTERNAL),
  (r"py:.*", _BUILTINS),
  (r"py:class", r"Array"),  # jax.Array, as the package's NamedTuple fields write it (from jax import Array)
  (r"py:class", r"'(in|out)'"),  # the members of Literal['in', 'out'] in `passes: Sequence[Pass]`
]

# --- API reference -----------------------------------------------------------------
autosummary_generate = True
autodoc_typehints = "description"  # signatures read like the code: rewired(base_init, *, out_axis=-1, ...)
autodoc_typehints_description_target = "documented_params"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" of the NamedTuples become a field list, not duplicate objects
napoleon_use_rtype = False
python_display_short_literal_types = True
python_maximum_signature_line_length = 100

# --- pages -------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3  # RESULTS.md links to its own sections (#gpu-session-plan)
nb_execution_mode = "off"  # notebooks show the outputs they were committed with
nb_merge_streams = True
nb_render_markdown_format = "myst"  # markdown cell outputs (the tables of notebooks 02 and 03) with tables

plot_basedir = str(DOCS / "plots")
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]

html_theme = "sphinx_book_theme"
html_title = "parewire_jax"
html_theme_options = {
  "show_toc_level": 2,
  "home_page_in_toc": True,
  "use_download_button": False,
  "use_fullscreen_button": False,
}
html_context = {"default_mode": "auto"}  # light or dark as the reader's system prefers
html_show_sourcelink = False
html_copy_source = False
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True


# --- pages made at build time ----------------------------------------------------
# Pages kept elsewhere in the repository are copied into docs/ (git-ignored), so that
# their relative links (01_quickstart.ipynb, scaling_cpu.png, #gpu-session-plan) work
# as they do on GitHub. Unchanged files are not touched: incremental builds stay so.
COPIED = {"notebooks": ("*.ipynb", "README.md"), "benchmarks": ("RESULTS.md", "scaling_cpu.png")}


def _copy_pages() -> None:
  for folder, patterns in COPIED.items():
    target = DOCS / folder
    target.mkdir(exist_ok=True)
    wanted = {src.name: src for pattern in patterns for src in sorted((ROOT / folder).glob(pattern))}
    for stale in {p.name for p in target.iterdir()} - set(wanted):
      (target / stale).unlink()
    for name, src in wanted.items():
      dst = target / name
      if not dst.exists() or dst.read_bytes() != src.read_bytes():
        shutil.copy2(src, dst)


def _cli_help() -> None:
  """``python -m parewire_jax <command> --help`` into _generated/ for guides/experiments.md."""
  from parewire_jax.__main__ import main

  out = DOCS / "_generated"
  out.mkdir(exist_ok=True)
  columns = os.environ.get("COLUMNS")
  os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width
  try:
    for command in ("compare", "strength", "laperm"):
      buffer = io.StringIO()
      with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
        main([command, "--help"])
      path = out / f"cli_{command}.txt"
      if not path.exists() or path.read_text() != buffer.getvalue():
        path.write_text(buffer.getvalue())
  finally:
    if columns is None:
      del os.environ["COLUMNS"]
    else:
      os.environ["COLUMNS"] = columns


ERROR_EXAMPLES = """\
import jax, jax.numpy as jnp, optax
import parewire_jax as pw
from jax.nn.initializers import he_normal
pw.rewired(he_normal(), passes="in")
pw.rewired(he_normal(), offset=0)
pw.rewired(he_normal())(jax.random.key(0), (16,))
pw.rewired(he_normal(), out_axis=0, batch_axis=0)(jax.random.key(0), (3, 4))
pw.pa_rewire(jax.random.key(0), jnp.zeros((2, 3, 4)))
pw.pa_rewire(0, jnp.zeros((3, 4)))
pw.rewire(jax.random.key(0), jnp.zeros((3, 4), jnp.int32))
pw.laperm(optax.adam(1e-3), sync_period=0)
pw.random_prune(jax.random.key(0), jnp.ones((4, 4)), 1.5)
"""


def _error_examples() -> None:
  """Runs ERROR_EXAMPLES line by line into _generated/errors.txt (guides/errors.md)."""
  namespace: dict = {}
  lines = []
  for line in ERROR_EXAMPLES.splitlines():
    lines.append(f">>> {line}")
    try:
      exec(line, namespace)  # noqa: S102
    except Exception as error:  # noqa: BLE001
      lines.append(f"{type(error).__name__}: {error}")
    else:
      if not line.startswith(("import", "from")):
        raise RuntimeError(f"docs/conf.py ERROR_EXAMPLES: {line!r} no longer raises")
  text = "\n".join(lines) + "\n"
  path = DOCS / "_generated" / "errors.txt"
  if not path.exists() or path.read_text() != text:
    path.write_text(text)


_copy_pages()
_cli_help()
_error_examples()


# --- checks that make the build fail ---------------------------------------------
PUBLIC_MODULES = (parewire_jax, parewire_jax.experiments)


def _public_names() -> list[str]:
  return [f"{m.__name__}.{name}" for m in PUBLIC_MODULES for name in m.__all__]


def _skip_namedtuple_fields(app, what, name, obj, skip, options):
  """NamedTuple fields are described in their class's "Attributes:" section."""
  if type(obj).__name__ == "_tuplegetter":
    return True
  return None


def _drop_type_docstrings(app, what, name, obj, options, lines):
  """A constant (a tuple of names) has no docstring of its own: do not show its type's."""
  if what == "data" and lines and obj.__doc__ == type(obj).__doc__:
    lines.clear()


def _check_api_complete(app, env):
  """Every public name has an entry in the API reference, and nothing else at top level does."""
  from sphinx.util import logging

  logger = logging.getLogger("parewire_jax.docs")
  documented = set(env.domains["py"].objects)
  public, modules = set(_public_names()), {m.__name__ for m in PUBLIC_MODULES}
  for name in sorted(public - documented):
    logger.warning("public name %s has no entry in the API reference (docs/api/)", name, type="parewire_jax")
  for name in sorted(documented - public - modules):
    if name.rsplit(".", 1)[0] in modules and env.domains["py"].objects[name].objtype != "module":
      logger.warning("%s is documented but not in __all__", name, type="parewire_jax")
  without = []
  for name in _public_names():
    module, attr = name.rsplit(".", 1)
    obj = getattr(sys.modules[module], attr)
    if (inspect.isfunction(obj) or inspect.isclass(obj)) and ">>>" not in (inspect.getdoc(obj) or ""):
      without.append(name)
  for name in without:
    logger.warning("public name %s has no >>> example in its docstring", name, type="parewire_jax")


def setup(app):
  app.connect("autodoc-skip-member", _skip_namedtuple_fields)
  app.connect("autodoc-process-docstring", _drop_type_docstrings)
  app.connect("env-check-consistency", _check_api_complete)
