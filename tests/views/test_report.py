"""The HTML report: content, escaping, diffs, plots, size caps, and a real headless Chromium opening it."""

from __future__ import annotations

import base64
import json
import io
import re
import shutil
from pathlib import Path

import pytest
from markupsafe import escape
from PIL import Image

from gome_agent.views.report import DIFF_MAX_LINES, write_report
from gome_agent.views.runview import RunView, fmt_score
from tests.views.test_runview import INJECTION, shared_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return shared_run(tmp_path_factory)


@pytest.fixture(scope="module")
def report(workdir, tmp_path_factory) -> Path:
    return write_report(workdir, tmp_path_factory.mktemp("out") / "report.html")


@pytest.fixture(scope="module")
def page(report) -> str:
    return report.read_text(encoding="utf-8")


def _colours(png: bytes) -> tuple[int, float]:
    """Distinct colours, and the share of pixels that are not white."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    counts = image.getcolors(image.width * image.height)
    white = sum(n for n, colour in counts if colour == (255, 255, 255))
    return len(counts), 1 - white / (image.width * image.height)


def _detail(page: str, trace: int, step: int) -> str:
    """The details row of one step."""
    match = re.search(rf'<tr class="detail" data-step="t{trace}-s{step}">.*?</details>', page, re.DOTALL)
    assert match, f"no details for trace {trace} step {step}"
    return match.group(0)


def test_default_location_is_the_run_folder(workdir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    assert write_report(copy) == copy / "report.html"
    assert (copy / "trajectory.png").exists() and (copy / "time_by_phase.png").exists()


def test_every_step_with_its_hypothesis_and_score(page, workdir):
    view = RunView.load(workdir)
    steps = view.steps()
    assert len(steps) == 8
    for step in steps:
        row = re.search(rf'<tr class="step" id="t{step.trace}-s{step.step}".*?</tr>', page, re.DOTALL)
        assert row, f"no row for trace {step.trace} step {step.step}"
        assert escape(step.hypothesis) in row.group(0)
        assert f">{step.status}<" in row.group(0)
        if step.score is not None:
            assert f">{fmt_score(step.score)}<" in row.group(0)
    assert f'id="best-score">{fmt_score(view.best_overall().score)}<' in page


def test_hypotheses_from_the_llm_are_escaped(page):
    assert "<script>alert(1)" not in page
    assert str(escape(INJECTION)) == "&lt;script&gt;alert(1)&lt;/script&gt; constant baseline"
    assert str(escape(INJECTION)) in page
    assert page.count("<script>") == 1  # only the report's own filter script


def test_diff_of_an_improved_step(page, workdir):
    view = RunView.load(workdir)
    improved = next(s for s in view.steps() if s.accepted and s.parent_step is not None)
    parent = view.find_step(improved.trace, improved.parent_step)
    text = _detail(page, improved.trace, improved.step)
    assert f"diff against step {parent.step}" in text
    assert f'<span class="del">-SCORE = {parent.score:.6f}</span>' in text
    assert f'<span class="add">+SCORE = {improved.score:.6f}</span>' in text
    # The diagnosis: observations, limiting problem and every candidate with its ranking terms.
    assert improved.limiting_problem in text
    for rank in improved.ranking:
        assert escape(rank.hypothesis) in text
        assert f">{rank.total}<" in text
    assert "(taken)" in text


def test_failed_step_shows_its_error(page, workdir):
    view = RunView.load(workdir)
    failed = next(s for s in view.steps() if s.status == "failed")
    detail = _detail(page, failed.trace, failed.step)
    assert "deliberate failure" in detail
    assert escape('raise RuntimeError("deliberate failure")') in detail


def test_memory_final_selection_and_cost_sections(page, workdir):
    view = RunView.load(workdir)
    memory = page.split('id="memory"')[1].split('id="final"')[0]
    assert memory.count("<tr>") == len(view.memory) + 1
    final = page.split('id="final"')[1].split('id="cost"')[0]
    assert escape(view.final_selection.reason) in final
    assert final.count('class="chosen"') == 1
    assert f"from trace {view.best.trace} step {view.best.step}" in final
    cost = page.split('id="cost"')[1]
    for role in view.usage.by_role:
        assert f"<td>{role}</td>" in cost
    assert "<td>gpt-5-mini</td>" in cost and "<td>gpt-5</td>" in cost


def test_self_contained_and_plots_written(page, report):
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "http://" not in page.split("<body>")[0] and "https://" not in page.split("<body>")[0]
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(uris) == 2
    for name, uri in zip(("trajectory.png", "time_by_phase.png"), uris, strict=True):
        png = (report.parent / name).read_bytes()
        assert png.startswith(PNG_SIGNATURE)
        assert base64.b64decode(uri) == png
        colours, inked = _colours(png)
        assert colours > 30 and inked > 0.03


def test_big_code_is_capped_and_missing_files_are_said(workdir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    view = RunView.load(copy)
    improved = next(s for s in view.steps() if s.accepted and s.parent_step is not None)
    long_code = "".join(f"x_{i} = {i}  # <b>{i}</b>\n" for i in range(20_000))
    (copy / improved.code_dir / "main.py").write_text(long_code)
    draft = next(s for s in view.steps() if s.kind == "draft" and s.trace != improved.trace)
    (copy / draft.code_dir / "main.py").unlink()
    page = write_report(copy, tmp_path / "big.html").read_text()
    assert len(page) < 1_500_000
    detail = _detail(page, improved.trace, improved.step)
    diff = re.search(r'<pre class="diff">.*?</pre>', detail, re.DOTALL).group(0)
    assert diff.count("<span class=") == DIFF_MAX_LINES + 1
    assert "more lines not shown" in detail
    assert "<b>1</b>" not in page and "&lt;b&gt;1&lt;/b&gt;" in page
    assert f"{draft.code_dir}/main.py is missing" in page


def test_report_of_a_run_being_written(workdir, tmp_path):
    copy = tmp_path / "live"
    shutil.copytree(workdir, copy, symlinks=True)
    events = copy / "events.jsonl"
    data = events.read_bytes()
    events.write_bytes(data[: len(data) // 2])  # cut in the middle of some line
    (copy / "code" / "best.json").unlink()
    (copy / "llm_calls.jsonl").unlink()
    view = RunView.load(copy)
    page = write_report(copy, tmp_path / "live.html").read_text()
    assert 0 < len(view.steps()) < 8
    assert page.count('<tr class="step"') == len(view.steps())
    assert "No solution is in place yet." in page
    assert f'id="best-score">{fmt_score(view.best_overall().score)}<' in page


# A real browser ------------------------------------------------------------------------------

_BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
_DRIVER = shutil.which("chromedriver")


@pytest.mark.skipif(_BROWSER is None or _DRIVER is None,
                    reason="Chromium and chromedriver are not installed "
                    "(Debian: apt-get install chromium chromium-driver)")
def test_report_in_headless_chromium(report, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = _BROWSER
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,2000",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
        "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--metrics-recording-only",
        "--disable-features=OptimizationHints,MediaRouter,Translate", f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(_DRIVER))
    try:
        driver.get(report.as_uri())
        assert driver.title.startswith("Gome run report")
        plot = driver.find_element(By.ID, "trajectory-plot")
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", plot) > 400
        driver.execute_script("arguments[0].scrollIntoView()", plot)
        colours, inked = _colours(plot.screenshot_as_png)
        assert colours > 30 and inked > 0.03, "the trajectory plot renders blank"
        # Details open on demand, and the filter hides the steps of the other trace.
        detail = driver.find_element(By.CSS_SELECTOR, 'tr.detail[data-step="t0-s2"] details')
        assert not detail.find_element(By.TAG_NAME, "h3").is_displayed()
        detail.find_element(By.TAG_NAME, "summary").click()
        assert detail.find_element(By.TAG_NAME, "h3").is_displayed()
        driver.find_element(By.ID, "filter").send_keys("t1")
        visible = [r.get_attribute("id") for r in driver.find_elements(By.CSS_SELECTOR, "tr.step") if r.is_displayed()]
        assert visible and all(name.startswith("t1-") for name in visible)
        severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert severe == []
    finally:
        driver.quit()


def test_a_step_accepted_on_pooled_evidence_shows_both_fold_sets(workdir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy, symlinks=True)
    events = copy / "events.jsonl"
    lines, changed = events.read_text(encoding="utf-8").splitlines(), None
    for i, line in enumerate(lines):
        record = json.loads(line)
        if record.get("type") == "step" and record.get("accepted") and record.get("parent_step") is not None:
            record.update(scored_by="gome", fold_scores=[0.71, 0.72, 0.7], reported_folds=[0.74, 0.75, 0.73],
                          noise=0.0012, threshold=0.0012, pooled_gain=0.0031)
            lines[i], changed = json.dumps(record), record
            break
    assert changed is not None
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    detail = _detail(write_report(copy, tmp_path / "r.html").read_text(), changed["trace"], changed["step"])
    assert ("held-out part scores 0.71, 0.72, 0.7; its own fold scores 0.74, 0.75, 0.73; pooled gain +0.0031, "
            "noise 0.0012, a gain had to beat 0.0012") in detail
