"""Page-level build steps of the book.

* **Downloads that run.** The "download .ipynb" button of every chapter serves the stored
  notebook, which has no outputs.  After the build, each download is replaced by the
  notebook as executed for the book (outputs, figures and widget state included), with a
  first cell that says how to install what it imports.
* **No assets the pages do not use.**  Jupyter Book loads sphinx-design, sphinx-togglebutton
  and sphinx-thebe on every page; no page uses them (chapters fold cells with myst-nb's own
  ``hide-input``), so their CSS and JavaScript are dropped from the pages that do not need
  them.
"""

from __future__ import annotations

import json
from pathlib import Path

INSTALL_CELL = """\
**Running this notebook.** This is a chapter of *Diffusion, Derived*, saved with the outputs
of the build that made the book. It imports `ddpm_lite` and its teaching layer
`ddpm_lite.book` from the book's repository. In a checkout of the repository, either

```bash
make env                          # .venv with the pinned versions (Python ≥ 3.10)
.venv/bin/jupyter lab notebooks/  # then open this chapter
```

or, in an environment of your own, `pip install -e ".[book]"` from the repository root.
Every chapter is seeded: running all cells reproduces the outputs below (timings aside).
"""

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


def _executed_downloads(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    executed = outdir.parent / "jupyter_execute"
    for docname in sorted(app.env.found_docs):
        if not str(app.env.doc2path(docname)).endswith(".ipynb"):
            continue
        run, target = executed / f"{docname}.ipynb", outdir / "_sources" / f"{docname}.ipynb"
        if not (run.exists() and target.exists()):
            continue
        nb = json.loads(run.read_text())
        cell = {"cell_type": "markdown", "id": "how-to-run", "metadata": {},
                "source": INSTALL_CELL.splitlines(keepends=True)}
        nb["cells"] = [cell] + [c for c in nb["cells"] if c.get("id") != "how-to-run"]
        target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def setup(app):
    app.connect("html-page-context", _drop_unused_assets)
    app.connect("build-finished", _executed_downloads)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
