"""Keep the built book offline and light: per-page assets, no CDN, no unused widget manager.

* sphinx-thebe (pulled in by Jupyter Book, unused here since launch buttons are off) writes a
  script that names thebe's CDN address into every page.  Nothing loads it unless a reader
  presses a launch button we do not show, but a page that reads offline should not mention
  a CDN at all, so those two scripts are dropped.
* Exercises (``div.ddpm-exercise``) load the vendored math.js and ``exercises.js``, on the
  pages that have one.
* The explorers of the book render, without a kernel, as our own small viewers
  (``schedule_explorer.js``, ``ddpm_frames.js``, ``widgets.css``); only pages that hold one
  load them.  Notebook outputs are shown as that HTML, not as ipywidgets views
  (``nb_mime_priority_overrides`` in ``_config.yml``), so the ipywidgets state myst-nb embeds
  from the executed notebook is never used: it is dropped (it holds every widget's PNG once
  more) together with the need for the 3.6 MB ipywidgets HTML manager.
"""

from __future__ import annotations

#: class of an explorer's root element in a page → the files that bring it to life.
EXPLORER_ASSETS = {
    "ddpm-schedule-explorer": ["schedule_explorer.js"],
    "ddpm-frames": ["ddpm_frames.js"],
    # An exercise's answer box: the vendored parser, then the one checker shared by every page.
    "ddpm-exercise": ["vendor/mathjs/math.js", "exercises.js"],
}
EXPLORER_CSS = "widgets.css"
EXERCISE_CSS = "exercises.css"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _is_dropped(js) -> bool:
    attributes = getattr(js, "attributes", {}) or {}
    body = attributes.get("body", "")
    name = getattr(js, "filename", str(js)) or ""
    return ("THEBE_JS_URL" in body or "sphinx-thebe" in name
            or attributes.get("type") == WIDGET_STATE)


def _page_assets(app, pagename, templatename, context, doctree) -> None:
    body = context.get("body") or ""
    markers = [marker for marker in EXPLORER_ASSETS if f'class="{marker}' in body]
    if any(marker != "ddpm-exercise" for marker in markers):
        app.add_css_file(EXPLORER_CSS)
    if "ddpm-exercise" in markers:
        app.add_css_file(EXERCISE_CSS)
    for js in (js for marker in markers for js in EXPLORER_ASSETS[marker]):
        app.add_js_file(js)
    scripts = context.get("script_files")
    if scripts:
        scripts[:] = [js for js in scripts if not _is_dropped(js)]  # in place: the builder owns the list


def setup(app):
    # After myst-nb's own html-page-context handler, which adds the widget state.
    app.connect("html-page-context", _page_assets, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
