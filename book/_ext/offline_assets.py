"""Keep the built book free of CDN references.

sphinx-thebe (pulled in by Jupyter Book, unused here since launch buttons are off)
writes a script that names thebe's CDN address into every page.  Nothing loads it
unless a reader presses a launch button we do not show, but a page that reads
offline should not mention a CDN at all, so this drops those two scripts.
"""

from __future__ import annotations


def _drop_thebe(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    kept = []
    for js in scripts:
        body = getattr(js, "attributes", {}).get("body", "") if hasattr(js, "attributes") else ""
        name = getattr(js, "filename", str(js)) or ""
        if "THEBE_JS_URL" in body or "sphinx-thebe" in name:
            continue
        kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _drop_thebe)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
