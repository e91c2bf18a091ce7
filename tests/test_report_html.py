"""The self-contained HTML report: one file, every figure embedded, nothing fetched, renders in Chromium."""

from __future__ import annotations

import html as htmllib
import json
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import _fake_run as fake
from hjbench.present import html, plots, tables
from hjbench.present.summary import summarize
from hjbench.run.folder import RunFolder, write_parquet

CHROMIUM = Path("/usr/bin/chromium")
LIMITED = ("hj", "l1", 2, 100)  # planted: every repetition optimisation-limited
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--virtual-time-budget=10000"]
# written into a copy of the page: each image's state, load errors, and a column after a header click
PROBE = """<script>
window.__errs=[];
window.addEventListener('error',function(e){var t=e.target;
  window.__errs.push(t&&t.tagName?('cannot load '+t.tagName):String(e.message));},true);
window.addEventListener('load',function(){
  var h=Array.prototype.find.call(document.querySelectorAll('h3'),function(e){
    return e.textContent.indexOf('Errors at every')===0;});
  var t=h.nextElementSibling;t.tHead.rows[0].cells[4].click();
  var col=Array.prototype.map.call(t.tBodies[0].rows,function(r){return +(r.cells[4].dataset.v);});
  var p=document.createElement('pre');p.id='hjcheck';
  p.textContent=JSON.stringify({images:Array.prototype.map.call(document.images,function(i){
    return {alt:i.alt,width:i.naturalWidth,complete:i.complete};}),errors:window.__errs,sorted:col});
  document.body.appendChild(p);});
</script>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A fake run (with a failed cell and a planted opt-limited cell), summarised and drawn, and its page."""
    run_dir = fake.make_run(tmp_path_factory.mktemp("html"), "html-run", summary=False, methods=fake.METHODS,
                            priors=("l1",), dims=(2,), n_samples=fake.N_SAMPLES, repetitions=3)
    rows = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]
    for row in rows:
        if (row["method"], row["prior"], row["dim"], row["n_samples"]) == LIMITED:
            row["opt_limited"] = True
    (run_dir / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "trials.parquet").unlink()
    trials = RunFolder(run_dir).load_trials()
    summary = summarize(trials)
    write_parquet(summary, run_dir / "summary.parquet")
    kw = dict(trials=trials, dpi=50, formats=("png",))
    figures = run_dir / "figures"
    plots.error_figures(summary, figures, **kw)
    plots.bound_ratio(summary, figures, **kw)
    plots.cost_figures(summary, figures, **kw)
    path = html.write_standalone(run_dir)
    return run_dir, path, path.read_text(encoding="utf-8")


def _section(page: str, ident: str) -> str:
    return page.split(f'id="{ident}"')[1].split("<h2 ")[0]


def test_one_file_with_every_figure_embedded_and_nothing_external(report):
    run_dir, path, page = report
    assert path == run_dir / "report" / "html-run.html"
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == len(list((run_dir / "figures").glob("*.png"))) >= 6
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<link|<script[^>]+src=|url\(|@import|<iframe", page)
    assert page.count("<script") == 1  # the sort script, inline
    headline = _section(page, "figures")
    assert "error_vs_n_forward_rel_mse" in headline and "bound_ratio" in headline and "fit_time" not in headline
    assert "fit_time" in _section(page, "more")


def test_bound_check_with_fitted_slopes(report):
    from hjbench.score.check import check_run

    run_dir, _, page = report
    bound = _section(page, "bound")
    verdict = check_run(run_dir)
    assert htmllib.escape(verdict.summary()) in bound
    slopes = bound.split("Fitted slopes")[1].split("<h3>")[0]
    assert slopes.count("<tr>") == len(verdict.slopes) + 1 and "one-sided test" in slopes
    fit = next(s for s in verdict.slopes if s.method == "maxplus")
    assert f"{fit.fit.slope:.3g}" in slopes


def test_coverage_and_opt_limited_flags_come_from_the_run(report):
    _, _, page = report
    validity = _section(page, "validity")
    rows = re.findall(r"<tr>(.*?)</tr>", validity, re.S)
    cells = [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)] for r in rows[1:]]
    flagged = [c for c in cells if c[-1].endswith("‡")]
    assert [c[:4] for c in flagged] == [["hj", "l1", "2", "100"]] and flagged[0][-1] == "100% ‡"
    assert all(c[-1] in ("0%", "100% ‡", "n/a") for c in cells)
    assert "forward coverage" in validity


def test_data_regimes_and_provenance_name_the_runs_commit(report):
    from hjbench.run.provenance import git_state

    _, _, page = report
    regimes = _section(page, "regimes")
    assert all(f"<td>{m}</td>" in regimes for m in fake.METHODS)
    lista = re.search(r"<td>lista</td><td>([^<]*)</td><td>([^<]*)</td>", regimes)
    assert lista.group(2) == "prox"
    provenance = _section(page, "provenance")
    info = json.loads((report[0] / "run.json").read_text())
    assert info["environment"]["git"]["commit"] in provenance and "uncommitted changes" in provenance
    here = git_state()["commit"]
    assert here is None or here not in page  # the run's commit, not the checkout's


def test_tables_cover_every_n_and_sort(report):
    _, _, page = report
    errors = _section(page, "tables")
    assert "Errors at every n_samples" in errors and "Timings at every n_samples" in errors
    first = errors.split("</table>")[0]
    assert {int(n) for n in re.findall(r"<td>hj \[[^<]*\]‡?</td><td>l1</td><td>2</td><td>(\d+)</td>", first)} == set(
        fake.N_SAMPLES)
    assert "data-v=" in first


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium)")
def test_renders_in_headless_chromium(report, tmp_path):
    """Every image decodes (naturalWidth > 0), nothing fails to load, a header click sorts, a screenshot is taken."""
    _, path, page = report
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    flags = FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([str(CHROMIUM), *flags, "--enable-logging=stderr", "--v=0", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=90)
    shot = tmp_path / "page.png"
    subprocess.run([str(CHROMIUM), *flags, "--window-size=1200,2400", f"--screenshot={shot}", path.as_uri()],
                   capture_output=True, text=True, timeout=90, cwd=tmp_path)
    found = re.search(r'<pre id="hjcheck">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stderr[-2000:]
    status = json.loads(htmllib.unescape(found.group(1)))
    assert len(status["images"]) == page.count("<img ")
    assert all(i["complete"] and i["width"] > 0 for i in status["images"]), status["images"]
    assert status["errors"] == []
    assert status["sorted"] == sorted(status["sorted"]) and len(set(status["sorted"])) > 1
    assert [line for line in dom.stderr.splitlines() if ":CONSOLE" in line] == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_write_html_report_takes_what_report_computes(report, tmp_path):
    """The lower-level call the report command makes: figures and tables passed in, no bound check."""
    run_dir, _, _ = report
    summary = pd.read_parquet(run_dir / "summary.parquet")
    png = sorted((run_dir / "figures").glob("*.png"))[0]
    out = html.write_html_report(run_dir, tmp_path / "page.html", figures={png.stem: png},
                                 tables=tables.build_tables(summary, all_n=True), bound_report=None,
                                 info={"run_id": "x"}, summary=summary, captions={png.stem: "A caption."})
    page = out.read_text(encoding="utf-8")
    assert page.count("<img ") == 1 and "A caption." in page and "could not be run" in page
    assert "Produced by commit <code>unknown</code>" in page
