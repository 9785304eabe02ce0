"""Executed tutorials as static HTML pages: text, code, printed output and figures.

Nothing on a page is fetched from the network: the style sheet is in the page, figures are
PNG files beside it, and there is no script. Markdown is rendered by ``markdown-it-py`` (which
jupytext depends on) and code coloured by Pygments (which IPython depends on). nbconvert would
do the same job with about ten more packages, and its HTML templates load MathJax and
require.js from a CDN by default; the tutorials hold no LaTeX (their formulas are code), so
this short writer is all a page needs.

A "predict before you run" question (a text cell holding ``**Predict before you run.**``)
folds what would give its answer away: the output of the code cells after it, and the text
cell that follows them when it begins with "The answer", go into an HTML ``<details>`` that
the reader opens after predicting, as a notebook's reader would run the cell.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field

QUESTION = "**Predict before you run.**"
ANSWER = re.compile(r"^\s*(\*\*)?The answers?\b")
SAVED = re.compile(r"^saved figure .*\n?", re.MULTILINE)  # printed by save(); the image shows

STYLE = """
body { font: 16px/1.55 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
  max-width: 60rem; margin: 0 auto; padding: 1rem 1.5rem 4rem; }
nav { display: flex; justify-content: space-between; gap: 1rem; font-size: 0.95rem;
  border-bottom: 1px solid #ddd; padding: 0.4rem 0; margin-bottom: 1rem; }
nav > a { white-space: nowrap; }
nav.bottom { border-top: 1px solid #ddd; border-bottom: 0; margin-top: 2rem; }
a { color: #0b57d0; }
h1 { font-size: 1.7rem; line-height: 1.25; } h2 { margin-top: 2.2rem; } h3 { margin-top: 1.6rem; }
code { font: 0.9em/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre { overflow-x: auto; padding: 0.6rem 0.8rem; border-radius: 6px; margin: 0.4rem 0; }
pre.code { background: #f6f8fa; border: 1px solid #e1e4e8; }
pre.output { background: #fff; border-left: 3px solid #9aa0a6; }
img.figure { display: block; max-width: 100%; height: auto; margin: 0.6rem 0; }
details.answer { border: 1px solid #c9d7f2; background: #f5f8ff; border-radius: 6px;
  padding: 0.3rem 0.8rem; margin: 0.6rem 0 1rem; }
details.answer > summary { cursor: pointer; font-weight: 600; color: #0b57d0; }
table { border-collapse: collapse; font-size: 0.95rem; }
th, td { border: 1px solid #ddd; padding: 0.35rem 0.55rem; vertical-align: top; text-align: left; }
footer { color: #5f6368; font-size: 0.85rem; margin-top: 2rem; border-top: 1px solid #ddd;
  padding-top: 0.6rem; }
"""


@dataclass
class Page:
    """One HTML page and the figure files that sit beside it."""

    html: str
    figures: dict[str, bytes] = field(default_factory=dict)  # relative path -> PNG bytes


def markdown(text: str) -> str:
    """Markdown to HTML (CommonMark with tables; raw HTML in the text is escaped)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


def inline(text: str) -> str:
    """One line of Markdown (code spans, emphasis) as HTML, without a paragraph."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).renderInline(text)


def code_html(source: str) -> str:
    """A code cell as ``<pre class="code">``, coloured when Pygments is installed."""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer
    except ImportError:
        return f'<pre class="code"><code>{html.escape(source)}</code></pre>'
    body = highlight(source, PythonLexer(), HtmlFormatter(nowrap=True))
    return f'<pre class="code highlight"><code>{body}</code></pre>'


def code_style() -> str:
    """Pygments' colours for ``.highlight``, or nothing without Pygments."""
    try:
        from pygments.formatters import HtmlFormatter
    except ImportError:
        return ""
    return HtmlFormatter(style="default").get_style_defs(".highlight")


def title_of(notebook: object, fallback: str) -> str:
    """The first heading of the first text cell, e.g. '03 · Skip connections: ...'."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, re.MULTILINE)
            return match.group(1).strip() if match else fallback
    return fallback


def outputs_html(cell: object, stem: str, figures: dict[str, bytes]) -> str:
    """A code cell's printed text and figures; each PNG becomes a file ``stem/figure-K.png``."""
    parts = []
    for out in cell.get("outputs", []):
        kind, data = out.get("output_type"), out.get("data", {})
        if kind == "stream":
            text = SAVED.sub("", out.get("text", ""))
            if text.strip():
                parts.append(f'<pre class="output">{html.escape(text.rstrip())}</pre>')
        elif "image/png" in data:
            name = f"{stem}/figure-{len(figures) + 1}.png"
            figures[name] = base64.b64decode(data["image/png"])
            alt = f"figure {len(figures)} of {stem}"
            parts.append(f'<img class="figure" src="{name}" alt="{alt}">')
        elif "text/plain" in data:
            parts.append(f'<pre class="output">{html.escape(data["text/plain"])}</pre>')
    return "\n".join(parts)


def tutorial_page(notebook: object, stem: str, nav: str, footer: str, title: str) -> Page:
    """The page of one executed tutorial (see the module docstring for the folding)."""
    figures: dict[str, bytes] = {}
    body, folded, open_question = [], [], False
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            text = cell.source
            if open_question and ANSWER.match(text):
                answer, text = _split_at_heading(text)  # a new section is not the answer
                folded.append(markdown(answer))
            if any(folded):
                body.append(_fold(folded))
            folded, open_question = [], QUESTION in text
            if text.strip():
                body.append(markdown(text))
        elif cell.cell_type == "code":
            body.append(code_html(cell.source))
            out = outputs_html(cell, stem, figures)
            if open_question:
                folded.append(out)  # the reader predicts first, then opens the run
            elif out:
                body.append(out)
    if any(folded):
        body.append(_fold(folded))
    return Page(
        _document(title, nav + "\n".join(body) + nav.replace('"top"', '"bottom"'), footer), figures
    )


def _split_at_heading(text: str) -> tuple[str, str]:
    """(the text before its first heading line, the heading and the rest)."""
    match = re.search(r"^#{1,6} ", text, re.MULTILINE)
    return (text, "") if match is None else (text[: match.start()], text[match.start() :])


def _fold(parts: list[str]) -> str:
    """A question's run and answer, folded until the reader opens them."""
    inner = "\n".join(p for p in parts if p)
    return (
        '<details class="answer"><summary>Predicted? Open the run and the answer</summary>\n'
        f"{inner}\n</details>"
    )


def _document(title: str, body: str, footer: str) -> str:
    """A whole HTML page: no script, no external request."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title.replace('`', ''))}</title>\n"
        f"<style>{STYLE}{code_style()}</style>\n</head>\n<body>\n"
        f"{body}\n<footer>{footer}</footer>\n</body>\n</html>\n"
    )


def nav_html(previous: tuple[str, str] | None, following: tuple[str, str] | None) -> str:
    """Links to the index and the tutorials before and after: (href, title) pairs."""
    left = f'<a href="{previous[0]}">&larr; {inline(previous[1])}</a>' if previous else ""
    right = f'<a href="{following[0]}">{inline(following[1])} &rarr;</a>' if following else ""
    return (
        f'<nav class="top"><span>{left}</span><a href="index.html">Course plan</a>'
        f"<span>{right}</span></nav>\n"
    )


def index_page(title: str, intro: str, rows: list[dict], footer: str) -> Page:
    """The course plan: one row per tutorial with what it teaches, its times, its exercises."""
    head = (
        "<tr><th>#</th><th>tutorial</th><th>what it teaches</th><th>reading</th>"
        "<th>run (this build)</th><th>course-kit exercises</th></tr>"
    )
    lines = []
    for row in rows:
        exercises = ", ".join(f"<code>{html.escape(e)}</code>" for e in row["exercises"]) or "-"
        teaches = markdown(row["teaches"]).strip()
        teaches = re.sub(r"^<p>(.*)</p>$", r"\1", teaches, flags=re.DOTALL)
        lines.append(
            f"<tr><td>{row['number']}</td>"
            f'<td><a href="{row["href"]}">{inline(row["title"])}</a></td>'
            f"<td>{teaches}</td><td>{html.escape(row['reading'])}</td>"
            f"<td>{row['seconds']:.0f} s</td><td>{exercises}</td></tr>"
        )
    body = (
        f"<h1>{html.escape(title)}</h1>\n{markdown(intro)}\n"
        f"<table>\n{head}\n" + "\n".join(lines) + "\n</table>\n"
    )
    return Page(_document(title, body, footer))
