"""Page-level build steps of the book.

* **Downloads that run.** The "download .ipynb" button of every chapter serves the stored
  notebook, which has no outputs.  After the build, each download is replaced by the
  notebook as executed for the book (outputs, figures and widget state included), with a
  first cell that says how to install what it imports.  The outputs come from the
  execution cache: in ``execute_notebooks: cache`` mode myst-nb writes the notebook it
  *read* to ``_build/jupyter_execute``, not the one with the cached outputs merged in.
  Should no executed copy exist, the first cell says that the download has no outputs.
* **Where the code is.** The repository a reader needs to run a chapter is named by
  ``repository.url`` in ``_config.yml``.  When it is set, every page's footer and every
  downloaded chapter link it; left empty (this checkout does not know where it will be
  published), they tell the reader to use the repository the book came with.
* **β̃ in code blocks.** A letter with a combining tilde (β̃ = β + U+0303) is wrapped in
  ``<span class="ct">``; book.css draws the tilde over the letter's own cell, which no
  common monospace face does for Greek (see book.css).
* **Figures keep their shape.** myst-nb gives every output image the width *and* height
  that IPython stored with it, which Sphinx writes as an inline style; the stylesheet's
  ``max-width: 100%`` then narrows a figure on a phone but keeps its height (a squashed
  figure).  The height is dropped where a width is given: the browser derives it from the
  image itself.
* **No assets the pages do not use.**  Jupyter Book loads sphinx-design, sphinx-togglebutton
  and sphinx-thebe on every page; no page uses them (chapters fold cells with myst-nb's own
  ``hide-input``), so their CSS and JavaScript are dropped from the pages that do not need
  them.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from docutils import nodes

INSTALL_CELL = """\
**Running this notebook.** This is a chapter of *Diffusion, Derived*, {saved}. It imports
`ddpm_lite` and its teaching layer `ddpm_lite.book` from {repository}. In a checkout of the
repository, either

```bash
make env                          # .venv with the pinned versions (Python ≥ 3.10)
.venv/bin/jupyter lab notebooks/  # then open this chapter
```

or, in an environment of your own, `pip install -e ".[book]"` from the repository root
(`make book` there rebuilds the whole book). Every chapter is seeded: {rerun}
"""
SAVED = ("saved with the outputs of the build that made the book",
         "running all cells reproduces the outputs below (timings aside).")
UNSAVED = ("saved without outputs (this build kept no executed copy)",
           "running all cells gives the outputs of the book's page, timings aside.")


#: What Jupyter Book fills in when _config.yml names no repository: its own, not this book's.
JUPYTER_BOOK_DEFAULT = "https://github.com/executablebooks/jupyter-book"


def _repository(app) -> str:
    """``repository.url`` of ``_config.yml`` (Jupyter Book passes it on as a theme option), or ""."""
    url = str((app.config.html_theme_options or {}).get("repository_url") or "").strip()
    return "" if url.rstrip("/") == JUPYTER_BOOK_DEFAULT else url


def _repository_text(url: str, markdown: bool) -> str:
    if url:
        return f"the book's repository, [{url}]({url})" if markdown else \
            f'the book\'s repository, <a href="{html.escape(url)}">{html.escape(url)}</a>'
    return ("the repository this book was built from (its address is not recorded in this build: "
            "use the copy you got the book with)")


def _footer(app, config) -> None:
    """Every page's footer says where the code of the chapters is (unless _config.yml sets a footer)."""
    options = config.html_theme_options
    if options.get("extra_footer"):
        return
    options["extra_footer"] = (
        '<p class="run-it">To run a chapter yourself: download it with the ⬇ button (.ipynb, with its '
        f"outputs) and open it in a checkout of {_repository_text(_repository(app), markdown=False)}, "
        "after <code>make env</code>; <code>make book</code> there rebuilds this book.</p>")

#: Assets Jupyter Book adds to every page → a test on the page's HTML body that says
#: the page needs them.
OPTIONAL_ASSETS = {
    "sphinx-thebe": lambda body: False,  # launch buttons (and so thebe) are off in _config.yml
    "sphinx-design": lambda body: 'class="sd-' in body or " sd-" in body,
    "design-tabs": lambda body: 'class="sd-' in body or " sd-" in body,
    "togglebutton": lambda body: "toggle-hidden" in body or "dropdown admonition" in body
    or 'class="toggle' in body,
}


def _asset_name(asset) -> str:
    return getattr(asset, "filename", None) or str(asset)


def _drop_unused_assets(app, pagename, templatename, context, doctree) -> None:
    body = context.get("body", "")
    for key in ("script_files", "css_files"):
        assets = context.get(key)
        if not assets:
            continue
        kept = [a for a in assets
                if not any(name in _asset_name(a) and not needed(body)
                           for name, needed in OPTIONAL_ASSETS.items())]
        # In place: the builder owns this list, and offline_assets adds the explorers' files
        # to it for this page after us; a new list would hide those additions.
        assets[:] = kept


def _has_outputs(nb: dict) -> bool:
    return any(c.get("outputs") for c in nb.get("cells", []) if c.get("cell_type") == "code")


def _executed(app, docname: str, executed: Path) -> dict | None:
    """The chapter with the outputs of this build: the execution cache's copy merged into the
    stored notebook, else myst-nb's copy if that one has outputs (direct execution), else None."""
    import nbformat

    source = Path(app.env.doc2path(docname))
    cache_dir = Path(app.config.nb_execution_cache_path or Path(app.outdir).parent / ".jupyter_cache")
    if cache_dir.exists():
        try:
            from jupyter_cache import get_cache

            _, merged = get_cache(str(cache_dir)).merge_match_into_notebook(nbformat.read(source, as_version=4))
        except KeyError:  # not in the cache: this build did not execute it through the cache
            merged = None
        if merged is not None and _has_outputs(merged):
            return json.loads(nbformat.writes(merged))
    run = executed / f"{docname}.ipynb"
    if run.exists():
        nb = json.loads(run.read_text())
        if _has_outputs(nb):
            return nb
    return None


def _executed_downloads(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    executed = outdir.parent / "jupyter_execute"
    repository = _repository_text(_repository(app), markdown=True)
    for docname in sorted(app.env.found_docs):
        if not str(app.env.doc2path(docname)).endswith(".ipynb"):
            continue
        target = outdir / "_sources" / f"{docname}.ipynb"
        if not target.exists():
            continue
        nb = _executed(app, docname, executed)
        saved, rerun = SAVED if nb is not None else UNSAVED
        if nb is None:
            nb = json.loads(target.read_text())
        text = INSTALL_CELL.format(saved=saved, repository=repository, rerun=rerun)
        cell = {"cell_type": "markdown", "id": "how-to-run", "metadata": {}, "source": text.splitlines(keepends=True)}
        nb["cells"] = [cell] + [c for c in nb["cells"] if c.get("id") != "how-to-run"]
        target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


_PRE = re.compile(r"(<pre\b.*?</pre>)", re.S)
#: A visible character (not markup, not the end of an entity) followed by U+0303.
_TILDED = re.compile("([^\\s<>;&])\u0303")


def tilde_cells(body: str) -> str:
    """``body`` with every letter + U+0303 inside a ``<pre>`` wrapped for book.css's overlay."""
    def wrap(pre: re.Match) -> str:
        return _TILDED.sub('<span class="ct">\\1<span class="ct-mark">\u0303</span></span>', pre.group(1))
    return _PRE.sub(wrap, body)


def _tilde_cells(app, pagename, templatename, context, doctree) -> None:
    if "\u0303" in context.get("body", ""):
        context["body"] = tilde_cells(context["body"])


def _figures_keep_their_shape(app, doctree, docname) -> None:
    for image in doctree.findall(nodes.image):
        if "width" in image and "height" in image:
            del image["height"]


def setup(app):
    app.connect("html-page-context", _drop_unused_assets)
    app.connect("html-page-context", _tilde_cells)
    app.connect("build-finished", _executed_downloads)
    app.connect("config-inited", _footer)
    app.connect("doctree-resolved", _figures_keep_their_shape)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
