"""The course as a static website (``numpy-unet site``): pages, figures, folded answers, the
build all or nothing, a failing lesson named, and a real browser loading the pages.

Needs the ``site`` extra (jupytext, nbclient, ipykernel, markdown-it-py); ``.ci/run`` installs
it. The browser test needs Chromium (``apt-get install chromium``), which ``.ci/run`` installs
where it can; without it that test is skipped, saying so.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from numpy_unet.teach import course
from numpy_unet.teach.site.build import EXERCISES_BY_TUTORIAL, _exercises

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"


def test_every_exercise_of_the_course_kit_is_prepared_by_one_tutorial():
    listed = [name for number in EXERCISES_BY_TUTORIAL for name in _exercises(number)]
    assert sorted(listed) == sorted({*course.TASKS, *course.FORWARD_TASKS})
    assert len(listed) == len(set(listed))
    for number in EXERCISES_BY_TUTORIAL:  # each names a tutorial that exists
        assert len(list(TUTORIALS.glob(f"{number}_*.py"))) == 1


# -- building (needs the site extra) ----------------------------------------------------------
def needs_extra() -> None:
    for name in ("jupytext", "nbclient", "ipykernel", "markdown_it"):
        pytest.importorskip(name, reason='the site extra is not installed (pip install ".[site]")')


def test_without_the_extra_or_the_folder_the_command_says_what_to_do(tmp_path, monkeypatch, capsys):
    needs_extra()  # then hide one part of it
    import importlib.util

    from numpy_unet.app.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "jupytext" else real(name, *a)
    )
    assert main(["site", str(tmp_path / "site"), "--tutorials", str(TUTORIALS)]) == 2
    assert capsys.readouterr().err.strip() == (
        'error: site: building the site needs jupytext: pip install "numpy-unet[site]" '
        '(or pip install ".[site]" in the repository)'
    )
    monkeypatch.setattr(importlib.util, "find_spec", real)
    assert main(["site", str(tmp_path / "site"), "--tutorials", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: site: the tutorials folder {tmp_path / 'nope'} does not exist"
    )
    assert [p.name for p in tmp_path.iterdir()] == []


TINY = """\
# %% [markdown]
# # 01 · A tiny lesson: `x` squared
#
# **Time:** about 2 minutes to read.

# %%
import numpy as np
from matplotlib.figure import Figure
from numpy_unet.teach.tutorial import save

x = np.arange(4)
print("x:", x)

# %% [markdown]
# **Predict before you run.** What is the sum of the squares of 0, 1, 2 and 3?

# %%
total = int((x**2).sum())
print("sum of squares:", total)
assert total == 14, "0 + 1 + 4 + 9"
fig = Figure(figsize=(2, 2))
fig.add_subplot().plot(x, x**2)
save(fig, "tiny_squares.png")

# %% [markdown]
# The answer: 14, printed above.
#
# ## 2. After the answer
#
# A section of its own, not folded. Read [the next one](02_second.html) or <b>this</b>.

# %%
print("done")
"""
SECOND = """\
# %% [markdown]
# # 02 · The second lesson
#
# Back to [the first](01_tiny.html).

# %%
print("two")
"""


@pytest.fixture(scope="module")
def tiny_tutorials(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny") / "tutorials"
    folder.mkdir()
    (folder / "01_tiny.py").write_text(TINY)
    (folder / "02_second.py").write_text(SECOND)
    (folder / "README.md").write_text(
        "| # | tutorial | what it teaches | run time |\n| --- | --- | --- | --- |\n"
        "| 01 | `01_tiny.py` | squares, and `sum` | ~1 s |\n"
        "| 02 | `02_second.py` | printing | ~1 s |\n"
    )
    return folder


@pytest.fixture(scope="module")
def tiny_site(tiny_tutorials) -> Path:
    needs_extra()
    from numpy_unet.teach.site import build_site

    return build_site(
        tiny_tutorials.parent / "site", quick=True, tutorials=tiny_tutorials, log=quiet
    )


def quiet(line: str) -> None:
    """A build's progress, not printed."""


def links_and_sources(page: str) -> list[str]:
    return re.findall(r'(?:href|src)="([^"]+)"', page)


def test_a_page_holds_text_code_output_figures_and_the_machine(tiny_site):
    page = (tiny_site / "01_tiny.html").read_text()
    assert "<h1>01 · A tiny lesson: <code>x</code> squared</h1>" in page
    assert "x: [0 1 2 3]" in page and "sum of squares: 14" in page
    assert 'src="01_tiny/figure-1.png"' in page
    assert (tiny_site / "01_tiny" / "figure-1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "saved figure" not in page  # the path the kernel saved to: the image shows instead
    assert "&lt;b&gt;this&lt;/b&gt;" in page  # raw HTML in the text is shown, not obeyed
    footer = page[page.index("<footer>") :]
    import numpy

    import numpy_unet

    assert (
        f"numpy-unet {numpy_unet.__version__}" in footer and f"NumPy {numpy.__version__}" in footer
    )
    assert "quick mode" in footer and "cores" in footer


def test_the_answer_is_folded_and_the_next_section_is_not(tiny_site):
    page = (tiny_site / "01_tiny.html").read_text()
    question = page.index("Predict before you run.")
    opened, closed = page.index("<details", question), page.index("</details>", question)
    folded = page[opened:closed]
    assert "sum of squares: 14" in folded and "figure-1.png" in folded  # the run's output
    assert "The answer: 14" in folded
    assert "After the answer" not in folded and "After the answer" in page[closed:]
    code = html.unescape(re.sub(r"<[^>]+>", "", page[question:opened]))
    assert "total = int((x**2).sum())" in code  # the code stays in view: predict from it
    assert "x: [0 1 2 3]" in page[:question]  # output before the question is not folded


def test_the_index_is_the_course_plan(tiny_site):
    index = (tiny_site / "index.html").read_text()
    assert '<a href="01_tiny.html">01 · A tiny lesson: <code>x</code> squared</a>' in index
    assert "squares, and <code>sum</code>" in index and "2 minutes" in index
    assert '<a href="02_second.html">' in index
    assert index.count("<tr>") == 3  # the header and one row per tutorial


def test_nothing_is_fetched_and_no_link_is_broken(tiny_site):
    for page in tiny_site.glob("*.html"):
        text = page.read_text()
        assert "<script" not in text and "<link" not in text and "url(" not in text
        for target in links_and_sources(text):
            assert not re.match(r"[a-z]+:", target), f"{page.name} links out to {target}"
            assert (tiny_site / target).is_file(), f"{page.name}: {target} is missing"
    names = sorted(p.name for p in tiny_site.iterdir())
    assert names == [".numpy-unet-site", "01_tiny", "01_tiny.html", "02_second.html", "index.html"]


def test_a_site_never_lands_on_an_earlier_folder(tiny_tutorials, tiny_site, tmp_path):
    from numpy_unet.teach.site import build_site

    before = (tiny_site / "index.html").read_bytes()
    second = build_site(tiny_site, quick=True, tutorials=tiny_tutorials, log=quiet)
    assert second == tiny_site.with_name(tiny_site.name + "-2")
    assert (tiny_site / "index.html").read_bytes() == before
    replaced = build_site(second, quick=True, tutorials=tiny_tutorials, overwrite=True, log=quiet)
    assert replaced == second and (second / "01_tiny.html").is_file()
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not a site built by 'numpy-unet site'"):
        build_site(mine, quick=True, tutorials=tiny_tutorials, overwrite=True, log=quiet)
    assert [p.name for p in mine.iterdir()] == ["keep.txt"]
    leftovers = [p.name for p in tiny_site.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temporary folder left beside the sites


def test_a_figure_saved_but_not_shown_fails_the_build(tiny_tutorials, tmp_path):
    from numpy_unet.teach.site import build_site

    folder = tmp_path / "tutorials"
    folder.mkdir()
    hidden = TINY.replace('save(fig, "tiny_squares.png")', 'fig.savefig(figures_dir() / "x.png")')
    hidden = hidden.replace("import save", "import figures_dir")
    (folder / "01_hidden.py").write_text(hidden)
    with pytest.raises(RuntimeError, match="01_hidden.py saved 1 figures but showed 0"):
        build_site(tmp_path / "site", quick=True, tutorials=folder, log=quiet)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tutorials"]


def test_no_kernel_is_left_running(tiny_site):
    assert kernels_of(os.getpid()) == []


def start_a_long_build(tmp_path: Path) -> subprocess.Popen:
    """``numpy-unet site`` on a tutorial that sleeps, once its kernel runs the sleep."""
    folder = tmp_path / "tutorials"
    folder.mkdir()
    (folder / "01_slow.py").write_text(
        '# %%\nimport time\nprint("sleeping", flush=True)\ntime.sleep(120)\n'
    )
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal\n"
        "from numpy_unet.app.cli import main\n"
        f"sys.exit(main(['site', {str(tmp_path / 'site')!r}, '--quick', '--tutorials', "
        f"{str(folder)!r}]))\n"
    )
    child = subprocess.Popen(  # its own process group, which a terminal's Ctrl-C signals
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,
    )
    time.sleep(0.5)
    deadline = time.monotonic() + 60
    while not kernels_of(child.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # the kernel is in the cell by now
    return child


def kernels_of(pid: int) -> list[str]:
    """The ipykernel processes whose parent is ``pid``."""
    found = []
    for other in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{other}/stat").read_text()
            command = Path(f"/proc/{other}/cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if stat.rsplit(")", 1)[1].split()[1] == str(pid) and b"ipykernel" in command:
            found.append(other)
    return found


def test_ctrl_c_stops_the_build_and_leaves_nothing(tmp_path):
    needs_extra()
    child = start_a_long_build(tmp_path)
    kernel = kernels_of(child.pid)
    assert len(kernel) == 1
    os.killpg(child.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err[-2000:]
    assert err.strip() == "interrupted (Ctrl-C)", err[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tutorials"]
    assert (
        not Path(f"/proc/{kernel[0]}").exists()
        or b"ipykernel" not in Path(f"/proc/{kernel[0]}/cmdline").read_bytes()
    )


def test_a_killed_builds_folder_is_removed_by_the_next_build(tmp_path, tiny_tutorials):
    needs_extra()
    from numpy_unet.teach.site import build_site

    child = start_a_long_build(tmp_path)
    kernel = kernels_of(child.pid)
    child.kill()  # SIGKILL: nothing runs after it
    child.communicate(timeout=60)
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".site.building-")]
    assert len(left) == 1  # what no code could clean up
    sockets = Path(tempfile.gettempdir()) / f"numpy-unet-kernel-{child.pid}-"
    assert len(list(sockets.parent.glob(sockets.name + "*"))) == 1
    deadline = time.monotonic() + 30  # the kernel sees its parent gone and ends
    while Path(f"/proc/{kernel[0]}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{kernel[0]}").exists()
    build_site(tmp_path / "site", quick=True, tutorials=tiny_tutorials, log=quiet)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site", "tutorials"]
    assert list(sockets.parent.glob(sockets.name + "*")) == []


def test_a_broken_lesson_fails_the_build_naming_tutorial_03(tmp_path):
    """Revert the skip fix of UNet.backward in a copy of the package: tutorial 03's lesson
    (the skip's gradient added to the pool's, where the paths meet) fails, and so does the
    build, naming the tutorial and the cell; nothing is written."""
    needs_extra()
    copy = tmp_path / "repo"
    shutil.copytree(
        ROOT / "numpy_unet", copy / "numpy_unet", ignore=shutil.ignore_patterns("__pycache__")
    )
    unet = copy / "numpy_unet" / "model" / "unet.py"
    fixed = "d = level.pool.backward(d) + d_skips.pop()"
    assert fixed in unet.read_text()
    unet.write_text(unet.read_text().replace(fixed, "d = level.pool.backward(d)"))  # skip lost
    (copy / "tutorials").mkdir()
    for name in ("02_pooling_and_upsampling.py", "03_skip_connections.py", "README.md"):
        shutil.copy(TUTORIALS / name, copy / "tutorials" / name)
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "numpy_unet",
            "site",
            str(tmp_path / "site"),
            "--quick",
            "--tutorials",
            str(copy / "tutorials"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert child.returncode == 2, child.stderr[-3000:]
    error = [line for line in child.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1, child.stderr[-3000:]
    assert re.match(
        r"error: site: tutorial 03_skip_connections\.py failed in cell \d+ \(line \d+ of "
        r"03_skip_connections\.py\): AssertionError: ",
        error[0],
    ), error[0]
    line = int(re.search(r"\(line (\d+) of", error[0]).group(1))
    script = (TUTORIALS / "03_skip_connections.py").read_text().splitlines()
    assert script[line - 1].startswith("assert "), script[line - 1]  # the lesson that broke
    assert "[2/2] 03_skip_connections.py: running" in child.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # no site, no temporary


# -- in a browser -------------------------------------------------------------------------------
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHECK = """<!DOCTYPE html><html><body><pre id="result">running</pre><script>
async function check(page) {
  const frame = document.createElement("iframe");
  frame.style.width = "1200px"; frame.style.height = "800px";
  document.body.appendChild(frame);
  await new Promise(done => { frame.onload = done; frame.src = page; });
  // the load event waits for every image: each has decoded its size by now, or failed (0)
  const doc = frame.contentDocument, images = [...doc.images], broken = [];
  for (const a of doc.querySelectorAll("a[href]")) {
    const reply = await fetch(a.href, {method: "HEAD"});
    if (!reply.ok) broken.push(a.getAttribute("href"));
  }
  return {page, images: images.length, widths: images.map(img => img.naturalWidth),
          links: doc.querySelectorAll("a[href]").length, broken,
          details: doc.querySelectorAll("details").length};
}
(async () => {
  const results = [];
  for (const page of PAGES) results.push(await check(page));
  document.getElementById("result").textContent = JSON.stringify(results);
})().catch(err => { document.getElementById("result").textContent = "ERROR " + err; });
</script></body></html>
"""


def browser() -> str:
    found = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if found is None:
        pytest.skip(
            "no Chromium or Chrome on this machine (apt-get install chromium): the "
            "pages were not loaded in a browser"
        )
    return found


def check_in_browser(site: Path, pages: list[str], shots: dict[str, Path]) -> list[dict]:
    """Serve ``site`` on localhost, load ``pages`` headless, and return for each the images'
    natural widths, links that did not answer 200, and its <details>; save screenshots."""
    chrome = browser()
    root = site.parent / f"{site.name}-check"
    root.mkdir()
    (root / "site").symlink_to(site.resolve())
    (root / "check.html").write_text(
        CHECK.replace("PAGES", json.dumps([f"site/{p}" for p in pages]))
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    flags = [
        chrome,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={root / 'profile'}",
    ]
    try:
        dom = subprocess.run(
            [*flags, "--virtual-time-budget=30000", "--dump-dom", f"{url}/check.html"],
            capture_output=True,
            text=True,
            timeout=180,
        ).stdout
        for page, shot in shots.items():
            subprocess.run(
                [*flags, "--window-size=1280,1600", f"--screenshot={shot}", f"{url}/site/{page}"],
                capture_output=True,
                timeout=180,
            )
    finally:
        server.shutdown()
        server.server_close()
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.DOTALL)
    assert found and found.group(1).startswith("["), dom[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def assert_loads(results: list[dict], shots: dict[str, Path]) -> None:
    for result in results:
        assert result["images"] == len(result["widths"])
        assert all(width > 0 for width in result["widths"]), result  # every image decodes
        assert result["broken"] == [], result
        assert result["links"] >= 1, result
    for shot in shots.values():
        import matplotlib.image

        pixels = matplotlib.image.imread(shot)
        assert pixels.shape[:2] == (1600, 1280) and pixels.std() > 0.01  # not a blank page
        print(f"screenshot: {shot}")


def test_the_pages_load_in_a_browser(tiny_site, tmp_path):
    browser()
    shots = {"index.html": tmp_path / "index.png", "01_tiny.html": tmp_path / "tiny.png"}
    results = check_in_browser(tiny_site, ["index.html", "01_tiny.html", "02_second.html"], shots)
    assert [r["images"] for r in results] == [0, 1, 0]
    assert [r["details"] for r in results] == [0, 1, 0]
    assert_loads(results, shots)
    # and the check can fail: a damaged figure, a link to a page that is not there
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_site, damaged)
    (damaged / "01_tiny" / "figure-1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    page = damaged / "02_second.html"
    page.write_text(page.read_text().replace("</footer>", '<a href="03_gone.html">x</a></footer>'))
    results = check_in_browser(damaged, ["01_tiny.html", "02_second.html"], {})
    assert results[0]["widths"] == [0] and results[1]["broken"] == ["03_gone.html"]


@pytest.mark.slow
def test_the_whole_course_builds_in_quick_mode_and_loads_in_a_browser(tmp_path):
    """What CI checks of the site: ``numpy-unet site OUT --quick`` on the ten tutorials, then
    the index and two tutorials in a browser (skipped, saying so, without one)."""
    needs_extra()
    out = tmp_path / "site"
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "numpy_unet",
            "site",
            str(out),
            "--quick",
            "--tutorials",
            str(TUTORIALS),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=tmp_path,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    scripts = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
    for script in scripts:
        page = (out / f"{script.stem}.html").read_text()
        shown = re.findall(rf'src="{script.stem}/figure-\d+\.png"', page)
        files = list((out / script.stem).glob("*.png"))
        assert len(shown) == len(files) >= 1, script.name  # the build checks saved == shown
        for target in links_and_sources(page):
            assert (out / target).is_file(), f"{script.name}: {target} is missing"
    shots = {"index.html": tmp_path / "index.png", "03_skip_connections.html": tmp_path / "03.png"}
    pages = ["index.html", "03_skip_connections.html", "07_training_on_membranes.html"]
    results = check_in_browser(out, pages, shots)
    assert results[1]["images"] >= 2 and results[2]["images"] >= 5
    assert_loads(results, shots)
