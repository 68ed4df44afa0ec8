"""book/_ext/pages.py without a book build: downloads get the cached outputs, figures keep
their shape, the footer names where the code is (tests/test_browser_reader.py checks the
built pages themselves)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from docutils import nodes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
import pages  # noqa: E402


def _app(tmp_path: Path, theme_options: dict | None = None):
    source = tmp_path / "notebooks" / "ch.ipynb"
    outdir = tmp_path / "_build" / "html"
    return SimpleNamespace(
        env=SimpleNamespace(doc2path=lambda docname: source, found_docs={"notebooks/ch"}),
        config=SimpleNamespace(nb_execution_cache_path="", html_theme_options=theme_options or {}),
        outdir=str(outdir), builder=SimpleNamespace(format="html")), source, outdir


def _notebook(with_output: bool) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(6 * 7)")
    if with_output:
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
        cell.execution_count = 1
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter"), cell]
    return nb


def test_the_download_gets_the_outputs_the_execution_cache_holds(tmp_path):
    """myst-nb (cache mode) writes the notebook it read, without outputs, to jupyter_execute;
    the download must take the cached outputs instead."""
    from jupyter_cache import get_cache

    app, source, outdir = _app(tmp_path)
    source.parent.mkdir(parents=True)
    nbformat.write(_notebook(with_output=False), source)  # the stored chapter: no outputs
    executed = tmp_path / "executed.ipynb"
    nbformat.write(_notebook(with_output=True), executed)
    get_cache(str(outdir.parent / ".jupyter_cache")).cache_notebook_file(str(executed), check_validity=False)
    # What myst-nb leaves in jupyter_execute, and the stored copy Sphinx puts up for download.
    (outdir.parent / "jupyter_execute" / "notebooks").mkdir(parents=True)
    nbformat.write(_notebook(with_output=False), outdir.parent / "jupyter_execute" / "notebooks" / "ch.ipynb")
    (outdir / "_sources" / "notebooks").mkdir(parents=True)
    nbformat.write(_notebook(with_output=False), outdir / "_sources" / "notebooks" / "ch.ipynb")

    pages._executed_downloads(app, None)
    nb = json.loads((outdir / "_sources" / "notebooks" / "ch.ipynb").read_text())
    assert "saved with the outputs" in "".join(nb["cells"][0]["source"])
    assert "".join(nb["cells"][2]["outputs"][0]["text"]) == "42\n"
    assert "".join(nb["cells"][1]["source"]) == "# A chapter"  # the markdown comes from the stored chapter


def test_without_an_executed_copy_the_download_says_it_has_no_outputs(tmp_path):
    app, source, outdir = _app(tmp_path)
    source.parent.mkdir(parents=True)
    nbformat.write(_notebook(with_output=False), source)
    (outdir / "_sources" / "notebooks").mkdir(parents=True)
    nbformat.write(_notebook(with_output=False), outdir / "_sources" / "notebooks" / "ch.ipynb")
    pages._executed_downloads(app, None)
    first = "".join(json.loads((outdir / "_sources" / "notebooks" / "ch.ipynb").read_text())["cells"][0]["source"])
    assert "without outputs" in first and "saved with the outputs" not in first


@pytest.mark.parametrize("url", ["", pages.JUPYTER_BOOK_DEFAULT, "https://example.org/diffusion-derived"])
def test_the_footer_and_the_download_name_the_repository_only_when_it_is_configured(tmp_path, url):
    app, _, _ = _app(tmp_path, {"repository_url": url})
    pages._footer(app, app.config)
    footer = app.config.html_theme_options["extra_footer"]
    cell = pages._repository_text(pages._repository(app), markdown=True)
    if url and url != pages.JUPYTER_BOOK_DEFAULT:  # Jupyter Book's own address is no answer
        assert f'href="{url}"' in footer and f"]({url})" in cell
    else:
        assert "href" not in footer and "http" not in cell and "built from" in cell
    # A footer that _config.yml sets is left alone.
    app.config.html_theme_options["extra_footer"] = "<p>ours</p>"
    pages._footer(app, app.config)
    assert app.config.html_theme_options["extra_footer"] == "<p>ours</p>"


def test_an_output_image_keeps_its_width_and_loses_its_fixed_height():
    doc = nodes.document(None, None)
    both, height_only = nodes.image(uri="a.png", width="688", height="430"), nodes.image(uri="b.png", height="50")
    doc += [both, height_only]
    pages._figures_keep_their_shape(None, doc, "ch")
    assert both["width"] == "688" and "height" not in both
    assert height_only["height"] == "50"  # no width: the height is all that sizes it


def test_a_combining_tilde_in_a_code_block_is_wrapped_and_kept():
    body = '<p>β\u0303</p><pre>x β\u0303ₜ &amp;\u0303 <span class="s">μ\u0303</span></pre>'
    out = pages.tilde_cells(body)
    assert out.startswith("<p>β\u0303</p>")  # prose is MathJax's or the text font's business
    assert out.count('<span class="ct">') == 2 and '<span class="ct">β<span class="ct-mark">\u0303</span></span>ₜ' in out
    assert "&amp;\u0303" in out  # never splits an entity
    assert out.count("\u0303") == body.count("\u0303")
