"""The HTML report: self-contained, atomic, and rendered by a real browser.

The browser test drives Debian's headless Chromium through chromedriver
(selenium). It is skipped where the browser is not installed, unless
``BAYESCALE_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which installs it), where a
missing browser fails.
"""

from __future__ import annotations

import html
import io
import os
import re
import shutil

import pytest

import bayescale as bs
from bayescale.cli import run
from bayescale.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def report(small_fit, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    return write_report(small_fit, path, plan_budget="1e22", risk="cvar:0.9", title="Chinchilla <small> test")


def test_report_is_self_contained(report, small_fit):
    text = report.path.read_text(encoding="utf-8")
    srcs = re.findall(r'src="([^"]*)"', text)
    assert len(srcs) == len(report.figures) >= 5
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:|//|file:)', text), "no external resources"
    assert "<script" not in text
    assert "Chinchilla &lt;small&gt; test" in text  # the title is escaped
    for table in ("Posterior summary", "Predictions", "Plan for 1e+22 FLOPs", "Model and sampler",
                  "Extrapolation: where the uncertainty comes from"):
        assert table in text
    # the default fit learned a discrepancy: its split of the uncertainty and its calibration plot
    assert "sd_model" in text and "calibration" in report.figures and 'id="fig-calibration"' in text
    assert "Diagnostics passed" in text if small_fit.diagnose().ok else "Diagnostics FAILED" in text
    citation = small_fit.source["citation"]
    assert "Hoffmann" in citation and html.escape(citation) in text
    assert report.n_bytes == len(text.encode("utf-8"))


def test_report_leaves_no_temporary_file(report):
    assert sorted(p.name for p in report.path.parent.iterdir()) == ["report.html"]


def test_report_cli(small_fit, tmp_path):
    fit_path = small_fit.save(tmp_path / "fit.nc")
    held = bs.datasets.load("chinchilla", epoch_subset=True).iloc[2::60][["N", "D", "loss"]]
    held.to_csv(tmp_path / "held.csv", index=False)
    out = tmp_path / "r.html"
    code = run(["report", str(fit_path), "-o", str(out), "--heldout", str(tmp_path / "held.csv")])
    assert code == (0 if small_fit.diagnose().ok else 3)
    assert out.is_file() and "held-out" in out.read_text()
    assert run(["report", str(tmp_path / "missing.nc"), "-o", str(out)]) == 2


def test_report_cli_bad_heldout_names_column(small_fit, tmp_path, capsys):
    fit_path = small_fit.save(tmp_path / "fit.nc")
    (tmp_path / "held.csv").write_text("N,D,loss\n1e9,2e10,2.5\n1e9,3e10,-1\n")
    assert run(["report", str(fit_path), "-o", str(tmp_path / "r.html"), "--heldout", str(tmp_path / "held.csv")]) == 2
    err = capsys.readouterr().err
    assert "loss" in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def _browser_or_skip():
    if CHROMIUM and CHROMEDRIVER:
        pytest.importorskip("selenium")
        return
    if os.environ.get("BAYESCALE_REQUIRE_BROWSER") == "1":
        pytest.fail("BAYESCALE_REQUIRE_BROWSER=1 but chromium / chromedriver are not installed")
    pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")


def test_report_renders_in_headless_chromium(report, tmp_path):
    _browser_or_skip()
    import matplotlib.image as mpimg
    import numpy as np
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(report.path.resolve().as_uri())
        state = driver.execute_script("return document.readyState")
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        png = driver.get_screenshot_as_png()
        title = driver.title
    finally:
        driver.quit()
    assert state == "complete"
    assert title == "Chinchilla <small> test"
    assert errors == []
    assert len(images) == len(report.figures)
    assert all(done and w > 0 and h > 0 for done, w, h in images), images
    shot = mpimg.imread(io.BytesIO(png), format="png")[..., :3]
    assert shot.shape[0] >= 600 and shot.shape[1] >= 1200  # the viewport: window minus browser frame
    # not blank: dark text and a figure on a light page
    assert (shot.min(axis=-1) < 0.5).mean() > 0.005 and np.unique(shot.reshape(-1, 3), axis=0).shape[0] > 50


def test_result_files_get_ordinary_permissions(report):
    # written through a temporary file (mkstemp makes it 0600), then given the umask's permissions
    mask = os.umask(0)
    os.umask(mask)
    assert report.path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_report_of_a_plain_fit_says_so(small_fit, tmp_path):
    rep = write_report(small_fit.with_discrepancy(None), tmp_path / "plain.html")
    text = rep.path.read_text(encoding="utf-8")
    assert "Plain model" in text and "calibration" not in rep.figures


def test_report_of_an_approximate_fit_says_so(tmp_path):
    fit = bs.fit(bs.datasets.load("chinchilla", epoch_subset=True), approx="laplace", draws=500)
    text = write_report(fit, tmp_path / "lap.html").path.read_text()
    assert "APPROXIMATE posterior (laplace" in text and "Diagnostics passed" not in text
