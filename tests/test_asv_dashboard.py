"""benchmarks/offline_dashboard.py: asv's dashboard, built from a tiny real asv run, renders offline.

A throw-away git repository and a two-benchmark asv suite under a temporary folder (so the
test does not depend on the project's checkout, its branches or a saved ``.asv``), two quick
``asv run --python=same`` (existing environment, nothing installed), then the script: ``asv
publish`` plus the rewrite to the vendored JS/CSS. The page is then loaded in headless
Chromium from a local ``http.server`` with every host name but 127.0.0.1 unresolvable, so it
can only render from local files.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "offline_dashboard.py"
CHROMIUM = Path("/usr/bin/chromium")
TRACK = "bench_probe.track_dashboard_value"
TIME = "bench_probe.Probe.time_dashboard_probe"

_spec = importlib.util.spec_from_file_location("offline_dashboard", SCRIPT)
od = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(od)

_SUITE = '''
from pathlib import Path


class Probe:
    def time_dashboard_probe(self):
        sum(range(1000))


def track_dashboard_value():
    return float(Path(__file__).with_name("value.txt").read_text())
'''


def _asv_www() -> Path:
    import asv

    return Path(asv.__file__).parent / "www"


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
    assert proc.returncode == 0, f"{cmd} exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A tiny asv project with results for two commits (asv machine/run, no publish yet)."""
    base = tmp_path_factory.mktemp("asvdash")
    repo, home = base / "repo", base / "home"
    (base / "benchmarks").mkdir()
    (base / "benchmarks" / "__init__.py").write_text("")
    (base / "benchmarks" / "bench_probe.py").write_text(_SUITE)
    home.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=probe", "-c", "user.email=probe@localhost",
           "-c", "commit.gpgsign=false"]
    _run(["git", "init", "-q", "-b", "main", str(repo)])
    shas = []
    for i in (1, 2):
        _run([*git, "commit", "-q", "--allow-empty", "-m", f"probe {i}"])
        shas.append(_run([*git, "rev-parse", "HEAD"]).stdout.strip())
    (base / "asv.conf.json").write_text(json.dumps({
        "version": 1, "project": "hjbench", "project_url": "https://github.com/hjbench/hjbench",
        "repo": str(repo), "dvcs": "git", "branches": ["main"],
        "environment_type": "existing", "build_command": [], "install_command": [], "uninstall_command": [],
        "benchmark_dir": "benchmarks", "env_dir": "env", "results_dir": "results", "html_dir": "html"}))
    env = {**os.environ, "HOME": str(home), "OMP_NUM_THREADS": "1"}  # ~/.asv-machine.json goes to HOME
    asv = [sys.executable, "-m", "asv"]
    _run([*asv, "machine", "--yes", "--config", "asv.conf.json"], cwd=base, env=env)
    for value, sha in zip((40, 42), shas):  # two points: the graph draws a rising line
        (base / "benchmarks" / "value.txt").write_text(str(value))
        _run([*asv, "run", "--python=same", "--quick", "--set-commit-hash", sha, "--config", "asv.conf.json"],
             cwd=base, env=env)
    return base


@pytest.fixture(scope="module")
def site(project) -> Path:
    """The offline dashboard, built by the script's command line (asv publish + rewrite)."""
    proc = _run([sys.executable, str(SCRIPT), "--config", str(project / "asv.conf.json")],
                env={**os.environ, "HOME": str(project / "home")})
    assert "no remote script or stylesheet left" in proc.stdout
    return project / "html"


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.refs.append(attrs["src"])
        elif tag == "link" and attrs.get("rel") != "alternate":
            self.refs.append(attrs["href"])
        elif tag == "img":
            self.refs.append(attrs["src"])


def test_every_cdn_reference_of_asv_is_vendored_with_the_cdn_bytes_and_a_license():
    """The URL table matches what the installed asv references; the files are the CDN's own bytes."""
    template = (_asv_www() / "index.html").read_text(encoding="utf-8")
    remote = {u.split(": ", 1)[1] for u in od.remote_refs(_asv_www())}
    assert remote == set(od.CDN), "asv's CDN list changed: vendor the new files (benchmarks/vendor/README.md)"
    tags = {od._tag_url(m.group(0))[1]: m.group(0) for m in od._TAG.finditer(template)}
    for url, (rel, same_bytes) in od.CDN.items():
        path = od.VENDOR / rel
        assert path.is_file(), rel
        assert list((od.VENDOR / Path(rel).parts[0]).glob("LICENSE*")), f"no LICENSE for {rel}"
        integrity = dict((a, v) for a, v, _s, _e in od._attrs(tags[url]))["integrity"]
        assert od._sri_ok(path, integrity) == same_bytes, (rel, integrity)
    # the unminified flot (npm flot@0.8.3) is the release asv asks for
    assert '$.plot.version = "0.8.3";' in (od.VENDOR / "flot-0.8.3" / "jquery.flot.js").read_text()


def test_site_has_no_remote_script_or_stylesheet_and_every_local_one_exists(site):
    assert od.remote_refs(site) == []
    parser = _Refs()
    parser.feed((site / "index.html").read_text(encoding="utf-8"))
    vendored = [r for r in parser.refs if r.startswith("vendor/")]
    assert len(vendored) == len(od.CDN) == 10
    for ref in parser.refs:
        assert not re.match(r"^([a-z]+:)?//", ref), ref
        assert (site / ref).is_file(), ref
    page = (site / "index.html").read_text(encoding="utf-8")
    assert "integrity=" not in page and "crossorigin=" not in page
    assert (site / "vendor" / "bootstrap-3.1.1" / "fonts" / "glyphicons-halflings-regular.woff").is_file()
    # run again on the finished site (--no-publish): nothing left to replace, still offline
    proc = _run([sys.executable, str(SCRIPT), "--config", str(site.parent / "asv.conf.json"), "--no-publish"])
    assert "0 CDN reference(s)" in proc.stdout
    assert subprocess.run([sys.executable, str(SCRIPT), "--check", str(site)]).returncode == 0
    # --check on asv's own template (what plain asv publish writes) finds the CDN references
    check = subprocess.run([sys.executable, str(SCRIPT), "--check", str(_asv_www())], capture_output=True, text=True)
    assert check.returncode == 1 and check.stderr.count("remote: index.html: https://") == 10


def test_rewrite_refuses_an_unknown_cdn_and_a_file_that_is_not_the_cdn_bytes(tmp_path):
    (tmp_path / "index.html").write_text(
        '<html><head><script src="https://example.org/lib.js"></script>\n'
        '<script src="https://code.jquery.com/jquery-3.3.1.min.js" integrity="sha256-AAAA" crossorigin="anonymous">'
        '</script></head><body></body></html>')
    with pytest.raises(od.OfflineError) as err:
        od.rewrite_site(tmp_path)
    assert "https://example.org/lib.js" in str(err.value)
    assert "jquery-3.3.1/jquery.min.js does not match integrity sha256-AAAA" in str(err.value)
    assert od.remote_refs(tmp_path)  # nothing was rewritten over the error
    assert od.rewrite_tag('<link rel="stylesheet" href="https://x/y.css" integrity="sha256-B" crossorigin="anonymous">',
                          "vendor/y.css") == '<link rel="stylesheet" href="vendor/y.css">'
    css = tmp_path / "a.css"
    css.write_text("body{background:url( 'https://example.org/bg.png')}")
    assert "a.css: https://example.org/bg.png" in od.remote_refs(tmp_path)


# Written into a copy of index.html: records load errors, waits until the dashboard's JS has
# drawn the benchmark grid (names + flot canvases), opens one benchmark's graph page, waits for
# its plot, then writes what it saw into <pre id="hjcheck"> for --dump-dom.
_PROBE = """<script>
window.__errs=[];
window.addEventListener('error',function(e){var t=e.target;
  window.__errs.push(t&&t.tagName?('cannot load '+t.tagName+' '+(t.getAttribute('src')||t.getAttribute('href'))):String(e.message));},true);
function __wait(cond, then, n){ if (cond() || n <= 0) { then(); } else { setTimeout(function(){ __wait(cond, then, n-1); }, 250); } }
function __canvases(sel){ return document.querySelectorAll(sel + ' canvas.flot-base').length; }
window.addEventListener('load',function(){
  var out = {errors: window.__errs};
  var $ = window.jQuery;
  out.jquery = $ ? $.fn.jquery : null;
  out.flot = ($ && $.plot) ? $.plot.version : null;
  out.flot_plugins = ($ && $.plot) ? $.plot.plugins.map(function(p){ return p.name + '@' + p.version; }) : null;
  out.tooltip = $ ? typeof $.fn.tooltip : null;
  out.stupidtable = $ ? typeof $.fn.stupidtable : null;
  out.md5 = typeof window.md5;
  __wait(function(){ return document.querySelectorAll('.benchmark-text').length >= 2 && __canvases('#summarygrid-display') >= 2; },
    function(){
      out.grid_names = Array.prototype.map.call(document.querySelectorAll('.benchmark-text'), function(e){ return e.textContent; });
      out.grid_canvases = __canvases('#summarygrid-display');
      out.navbar_min_height = getComputedStyle(document.querySelector('.navbar')).minHeight;
      out.page = location.pathname;
      location.hash = '#""" + TRACK + """';
      __wait(function(){ return __canvases('#main-graph') >= 1; }, function(){
        out.graph_title = document.getElementById('title').textContent.trim();
        out.graph_canvases = __canvases('#main-graph');
        var p = document.createElement('pre'); p.id = 'hjcheck'; p.textContent = JSON.stringify(out);
        document.body.appendChild(p);
      }, 40);
    }, 40);
});
</script>"""

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--hide-scrollbars", "--virtual-time-budget=15000",
          # every host but the local server is unresolvable: the page can only use local files
          "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


@pytest.fixture
def served(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium)")
def test_dashboard_renders_offline_in_headless_chromium(site, served, tmp_path):
    """jQuery, flot, Bootstrap JS and CSS load from vendor/; the grid and a graph are drawn; not blank.

    The DOM is read back from a probe copy of index.html (as in tests/test_report.py); the
    screenshot is of the real page, showing the graph of ``track_dashboard_value``.
    """
    from PIL import Image

    probe = site / "_probe.html"
    probe.write_text((site / "index.html").read_text(encoding="utf-8").replace("<head>", "<head>" + _PROBE, 1),
                     encoding="utf-8")
    flags = _FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]
    try:
        dom = subprocess.run([str(CHROMIUM), *flags, "--enable-logging=stderr", "--v=0", "--dump-dom",
                              served + "_probe.html"], capture_output=True, text=True, timeout=90)
    finally:
        probe.unlink()
    shot = tmp_path / "dashboard.png"
    subprocess.run([str(CHROMIUM), *flags, "--window-size=1200,900", f"--screenshot={shot}", served + "#" + TRACK],
                   capture_output=True, text=True, timeout=90, cwd=tmp_path)

    found = re.search(r'<pre id="hjcheck">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"the dashboard never finished drawing (or went to error.html)\n{dom.stderr[-3000:]}"
    seen = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<")
                      .replace("&gt;", ">"))
    assert seen["errors"] == [], seen["errors"]
    assert seen["page"].endswith("_probe.html")  # not redirected to error.html by js_load_failure()
    assert seen["jquery"] == "3.3.1"
    assert seen["flot"] == "0.8.3"
    assert {"time@1.0", "selection@1.1", "categories@1.0", "orderBars@0.2"} <= set(seen["flot_plugins"])
    assert seen["tooltip"] == "function" and seen["stupidtable"] == "function" and seen["md5"] == "function"
    assert seen["navbar_min_height"] == "50px"  # bootstrap.min.css applied
    assert sorted(seen["grid_names"]) == sorted([TIME.split(".", 1)[1], TRACK.split(".", 1)[1]])
    assert seen["grid_canvases"] >= 2  # one flot thumbnail per benchmark
    assert seen["graph_title"] == TRACK and seen["graph_canvases"] >= 1
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console

    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(shot).convert("RGB")
    total = img.width * img.height
    colors = img.getcolors(maxcolors=total)  # [(count, (r, g, b)), ...]
    non_white = sum(n for n, rgb in colors if min(rgb) < 235)
    colored = sum(n for n, (r, g, b) in colors if max(r, g, b) - min(r, g, b) > 60)  # plot lines, links: not grey
    navbar = dict((rgb, n) for n, rgb in colors).get((248, 248, 248), 0)  # bootstrap .navbar-default #f8f8f8
    # measured: this graph page 5 % non-white, 650 coloured pixels; asv's error.html (what the
    # page shows when a CDN script cannot load) 1.3 % non-white, no coloured pixel, no navbar
    assert non_white > 0.03 * total, (non_white, total)
    assert colored > 200, colored
    assert navbar > 20 * img.width, navbar
