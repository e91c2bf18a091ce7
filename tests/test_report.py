"""``hjbench report``: the page, its figures and tables, partial runs, and a real headless browser."""

from __future__ import annotations

import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

import _fake_run as fake
from hjbench.present import report

SMALL = dict(methods=fake.METHODS, priors=fake.PRIORS, dims=(4,), n_samples=fake.N_SAMPLES, repetitions=3)
CHROMIUM = Path("/usr/bin/chromium")


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.scripts, self.styles = [], [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        elif tag == "script":
            self.scripts += 1
        elif tag == "link":
            self.styles.append(attrs.get("href"))


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """A finished fake run (with a failed cell) whose runner stored cross-sections for l1, dim 4."""
    import torch

    from hjbench import priors
    from hjbench.present import plots

    run_dir = fake.make_run(tmp_path_factory.mktemp("report"), **SMALL)
    trials = pd.read_parquet(run_dir / "trials.parquet")
    prior = priors.get("l1", dim=4, t=1.0)
    for name, method in fake.fitted_standins(prior).items():
        ident = trials[(trials["method"] == name) & (trials["prior"] == "l1") & (trials["repetition"] == 0)
                       & (trials["n_samples"] == max(fake.N_SAMPLES))].iloc[0].to_dict()
        plots.write_sections(run_dir, method, ident, box=fake.BOX, n_points=41, dtype=torch.float64)
    assert report.main(run_dir, dpi=100, formats=("png",)) == 0
    return run_dir


def _refs(run_dir: Path) -> _Refs:
    parser = _Refs()
    parser.feed((run_dir / "report" / "index.html").read_text(encoding="utf-8"))
    return parser


def test_report_writes_figures_tables_and_a_self_contained_page(full):
    page = (full / "report" / "index.html").read_text(encoding="utf-8")
    refs = _refs(full)
    stems = {Path(src).stem for src in refs.images}
    assert {"error_vs_n_forward_rel_mse", "error_vs_n_prox_rel_mse", "error_vs_n_prior_bvs_rel_mse",
            "bound_ratio", "fit_time", "eval_time", "cross_section_l1_d4"} <= stems
    lacking = re.search(r"no prior curve for ([^(]*) \(", page).group(1).split(", ")
    assert "lista" in lacking and "hj" not in lacking
    for ref in refs.images + [h for h in refs.links if not h.startswith("#")]:
        assert not re.match(r"^[a-z]+:", ref), ref  # relative: no http(s), no file:, no CDN
        assert (full / "report" / ref).resolve().exists(), ref
    assert refs.scripts == 0 and refs.styles == []
    assert "class=warn" not in page  # every figure was drawn
    assert "http://" not in page and "https://" not in page
    for name in ("errors.md", "errors.tex", "timings.md", "timings.tex"):
        assert (full / "tables" / name).stat().st_size > 0
    # provenance from run.json
    info = json.loads((full / "run.json").read_text())
    for text in (info["environment"]["git"]["commit"], info["started"], info["ended"], "Fake CPU",
                 "hjbench run --config configs/smoke.toml", "2.13.0"):
        assert text in page


def test_missing_cells_list_the_failed_cell_with_its_reason(full):
    page = (full / "report" / "index.html").read_text(encoding="utf-8")
    missing = page.split('id=missing')[1].split('id=provenance')[0]
    method, prior, dim, n = fake.FAILED_CELL
    cells = [re.sub(r"\s+", " ", c).strip() for c in re.findall(r"<td>(.*?)</td>", missing, re.S)]
    rows = [cells[i:i + 6] for i in range(0, len(cells), 6)]
    assert [method, prior, str(dim), str(n), "failed x3", "RuntimeError: conjugate gradient diverged"] in rows
    assert all(r[4] != "ok" for r in rows)
    assert "partial: see Missing cells" in page


def test_report_on_a_partial_running_run_says_what_is_missing(tmp_path):
    run_dir = fake.make_run(tmp_path, summary=False, ended=False, parquet=False, methods=("hj", "lista"),
                            priors=("l1",), dims=(2,), n_samples=fake.N_SAMPLES, repetitions=2)
    lines = (run_dir / "trials.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "trials.jsonl").write_text("".join(lines[:7]) + lines[7][:40])  # killed mid-write
    with pytest.warns(UserWarning, match="half-written"):
        assert report.main(run_dir, dpi=100, formats=("png",)) == 0
    page = (run_dir / "report" / "index.html").read_text(encoding="utf-8")
    assert "not run yet" in page and "not ended" in page
    assert "computed from the trials" in page
    assert (run_dir / "figures" / "error_vs_n_forward_rel_mse.png").exists()
    missing = report.missing_cells(None, json.loads((run_dir / "run.json").read_text())["config"])
    assert len(missing) == 2 * 1 * 1 * 3  # every cell of the grid, with no trial at all


def test_missing_cells_of_a_run_kept_as_its_summary_only(full):
    summary = pd.read_parquet(full / "summary.parquet")
    config = json.loads((full / "run.json").read_text())["config"]
    missing = report.missing_cells(None, config, summary)
    method, prior, dim, n = fake.FAILED_CELL
    assert missing[["method", "prior", "dim", "n_samples", "what"]].values.tolist() == [
        [method, prior, dim, n, "not ok x3"]]


def test_report_on_a_run_that_just_started(tmp_path):
    run_dir = fake.make_run(tmp_path, summary=False, ended=False, **SMALL)
    for name in ("trials.jsonl", "trials.parquet"):
        (run_dir / name).unlink()
    assert report.main(run_dir) == 0
    page = (run_dir / "report" / "index.html").read_text(encoding="utf-8")
    assert "no finished trials yet" in page and page.count("not run yet x3") == 4 * 2 * 3
    assert _refs(run_dir).images == []


def test_report_on_a_folder_that_is_not_a_run_returns_2(tmp_path, capsys):
    assert report.main(tmp_path / "nope") == 2
    assert report.main(tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: run_dir=") for line in err)


_CHECK = """<script>
window.__errs=[];
window.addEventListener('error',function(e){var t=e.target;
  window.__errs.push(t&&t.tagName?('cannot load '+t.tagName+' '+(t.getAttribute('src')||t.getAttribute('href'))):String(e.message));},true);
window.addEventListener('load',function(){var p=document.createElement('pre');p.id='hjcheck';
  p.textContent=JSON.stringify({images:Array.prototype.map.call(document.images,function(i){
    return {src:i.getAttribute('src'),width:i.naturalWidth,complete:i.complete};}),errors:window.__errs});
  document.body.appendChild(p);});
</script>"""

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--hide-scrollbars", "--virtual-time-budget=10000"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(full, tmp_path):
    """The page loads with no console errors and every image renders (naturalWidth > 0).

    A copy of the page with a tiny probe script (the report itself has none) writes each
    image's status into the DOM on load; ``--dump-dom`` returns it. Console messages are read
    from Chromium's log. A screenshot is taken too (a PNG).
    """
    index = full / "report" / "index.html"
    probe = index.with_name("_probe.html")
    probe.write_text(index.read_text(encoding="utf-8").replace("<head>", "<head>" + _CHECK, 1), encoding="utf-8")
    flags = _FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]
    try:
        dom = subprocess.run([str(CHROMIUM), *flags, "--enable-logging=stderr", "--v=0", "--dump-dom",
                              probe.as_uri()], capture_output=True, text=True, timeout=60)
        shot = tmp_path / "report.png"
        subprocess.run([str(CHROMIUM), *flags, "--window-size=1200,3000", f"--screenshot={shot}",
                        index.as_uri()], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    finally:
        probe.unlink()
    found = re.search(r'<pre id="hjcheck">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stderr[-2000:]
    status = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(status["images"]) >= 7
    assert all(img["complete"] and img["width"] > 0 for img in status["images"]), status["images"]
    assert status["errors"] == []
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
