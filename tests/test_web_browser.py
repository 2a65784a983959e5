"""The clinician's page in a real browser: a uvicorn process driven by playwright
through Debian's chromium (no browser download), checked with axe-core.

The published PLO patient of the review's Table 3 row 9 (``SEED_CASE``) is typed
into the form, her result checked against ``RiskModel.assess``, a what-if control
changed, an invalid value sent back with its message beside the field, every page
checked for serious accessibility violations, the form filled with the keyboard
alone, and a full-page screenshot and a print PDF saved.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from plo_risk.data.catalog import load_catalog
from plo_risk.data.reference import reference_values
from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort
from plo_risk.model.bundle import save_bundle
from plo_risk.model.ensemble import fit_bootstrap_ensemble
from plo_risk.model.zoo import make_model
from plo_risk.report import SEED_CASE
from plo_risk.serve import RiskModel
from plo_risk.web import replay, verify
from tests.browser import CHROMIUM, CHROMIUM_ARGS

REPO = Path(__file__).resolve().parents[1]
WEB_TESTS = REPO / "tests" / "web"
AXE = WEB_TESTS / "node_modules" / "axe-core" / "axe.min.js"
# The form's ids for the seed case (Mishra et al. 2024, Table 3 row 9).
SEED_FORM = {
    "#age_years": "35",
    "#parity": "3",
    "#months_postpartum": "2",
    "#lactation_months": "2",
    "#bmd_lumbar_spine": "0.687",
    "#bmd_total_hip": "0.815",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    # Generator columns that are not model inputs (oracle, outcomes) are left out.
    cohort = generate_cohort(3000, setting="referral", seed=51)
    valid = validate_frame(cohort, unknown="ignore").valid
    y = valid["fracture"].to_numpy()
    X = valid[[c for c in valid.columns if c in load_catalog()]]
    model = make_model(
        "xgboost",
        params={"n_estimators": 30, "n_jobs": 1},
        cv=3,
        thresholds={"moderate": 0.02, "high": 0.10},
    ).fit(X, y)
    fit_bootstrap_ensemble(model, X, y, n_models=3)
    return save_bundle(
        model,
        tmp_path_factory.mktemp("browser-model") / "bundle",
        model_name="xgboost",
        extra={"reference": reference_values(X)},
    )


@pytest.fixture(scope="module")
def rm(bundle) -> RiskModel:
    return RiskModel.load(bundle)


@pytest.fixture(scope="module")
def server(bundle, tmp_path_factory):
    """``python -m plo_risk.web`` on a free loopback port; stopped by its pid."""
    work = tmp_path_factory.mktemp("server")
    port = _free_port()
    log = work / "audit.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "plo_risk.web",
            "--model",
            str(bundle),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--audit-log",
            str(log),
            "--keep-inputs",
            "--log-level",
            "warning",
        ],
        cwd=work,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(
                        "server exited: " + proc.stderr.read().decode()[-2000:]
                    ) from None
                if time.monotonic() > deadline:
                    raise AssertionError("the server did not start") from None
                time.sleep(0.3)
        yield {"base": base, "log": log, "pid": proc.pid}
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core's script, installed from tests/web/package-lock.json when missing."""
    if not AXE.is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to install axe-core (npm ci --prefix tests/web)")
        subprocess.run(
            [npm, "ci", "--prefix", str(WEB_TESTS), "--no-audit", "--no-fund"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return AXE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def browser():
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        if os.environ.get("PLO_RISK_SKIP_BROWSER") == "1":
            pytest.skip("PLO_RISK_SKIP_BROWSER=1 and no chromium")
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install "
            "chromium`; `make test` does this as root) or set PLO_RISK_SKIP_BROWSER=1"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, server):
    # bypass_csp: axe-core is injected as an inline script, which the app's
    # Content-Security-Policy (rightly) forbids.
    context = browser.new_context(
        viewport={"width": 1200, "height": 900}, bypass_csp=True
    )
    pg = context.new_page()
    pg.problems = []
    # A form sent back with its messages is a 422 answer, which chromium logs.
    pg.on(
        "console",
        lambda m: (
            pg.problems.append(m.text)
            if m.type == "error" and "status of 422" not in m.text
            else None
        ),
    )
    pg.on("pageerror", lambda exc: pg.problems.append(str(exc)))
    pg.on(
        "request",
        lambda r: (
            None
            if r.url.startswith((server["base"], "data:", "about:"))
            else pg.problems.append(f"request to {r.url}")
        ),
    )
    try:
        yield pg
    finally:
        context.close()


def _fill_seed_case(pg, base: str) -> None:
    pg.goto(base + "/")
    for selector, value in SEED_FORM.items():
        pg.fill(selector, value)
    pg.check("#breastfeeding_now-yes")


def _risk(pg, selector: str = "#risk-0") -> float:
    return float(pg.get_attribute(selector, "data-risk"))


def _axe(pg, axe_source: str) -> list[dict]:
    pg.add_script_tag(content=axe_source)
    result = pg.evaluate("async () => await axe.run(document)")
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def _pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", path.read_bytes()))


def test_seed_case_result_what_if_screenshot_and_print(page, server, rm, tmp_path):
    _fill_seed_case(page, server["base"])
    page.click("#submit")
    page.wait_for_selector("#risk-0")
    assessed = rm.assess(SEED_CASE)
    assert _risk(page) == assessed.risk
    assert page.inner_text("#risk").count("in 1,000") >= 1
    assert page.locator("svg.icon-array use").count() == 1000
    assert page.locator("svg.icon-array use.hit").count() == round(assessed.risk * 1000)
    # One what-if control: stop breastfeeding now (answered by the JSON API).
    page.select_option("#whatif__breastfeeding_now", "no")
    page.click("#what-if-submit")
    page.wait_for_selector("#what-if-risk-0")
    after = assessed.what_if(breastfeeding_now=False)
    # the same number as the Python API, to the last bits of a double (the page
    # sends the strings it holds; the API re-validates them)
    assert _risk(page, "#what-if-risk-0") == pytest.approx(after.risk, rel=1e-12)
    assert "Breastfeeding at assessment: no" in page.inner_text("#what-if-result")
    shot = tmp_path / "web_result.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    pdf = tmp_path / "web_result.pdf"
    page.pdf(path=str(pdf), format="A4")
    assert 1 <= _pdf_pages(pdf) <= 2
    assert page.problems == []
    # Both answers are in the audit log, and replay reproduces them.
    result = replay(server["log"], rm)
    assert verify(server["log"]).ok and result.ok and result.n_replayed >= 2
    events = [json.loads(x)["event"] for x in server["log"].read_text().splitlines()]
    assert events[-2:] == ["assess", "what_if"]


def test_invalid_value_comes_back_beside_its_field(page, server, rm):
    _fill_seed_case(page, server["base"])
    page.fill("#age_years", "99")
    page.click("#submit")
    page.wait_for_selector("#err-age_years")
    with pytest.raises(ValueError) as info:
        rm.assess({**SEED_CASE, "age_years": 99})
    reason = info.value.problems[0].reason
    message = page.inner_text("#err-age_years")
    assert reason in message
    # Beside the field: in the same field block, right under its input.
    assert page.locator("#field-age_years #err-age_years").count() == 1
    assert page.get_attribute("#age_years", "aria-invalid") == "true"
    assert "err-age_years" in page.get_attribute("#age_years", "aria-describedby")
    assert page.input_value("#age_years") == "99"
    assert page.input_value("#bmd_total_hip") == "0.815"
    assert page.is_checked("#breastfeeding_now-yes")
    assert page.evaluate("document.activeElement.id") == "error-summary"
    assert page.problems == []


def test_no_serious_accessibility_violation(page, server, axe_source):
    page.goto(server["base"] + "/")
    found = {"form": _axe(page, axe_source)}
    page.fill("#age_years", "99")
    page.click("#submit")
    page.wait_for_selector("#err-age_years")
    found["form with errors"] = _axe(page, axe_source)
    _fill_seed_case(page, server["base"])
    page.click("#submit")
    page.wait_for_selector("#risk-0")
    found["result"] = _axe(page, axe_source)
    for path in ("/about", "/docs"):
        page.goto(server["base"] + path)
        found[path] = _axe(page, axe_source)
    summary = {
        where: [(v["id"], v["impact"], len(v["nodes"])) for v in violations]
        for where, violations in found.items()
    }
    assert all(not v for v in found.values()), summary


def _tab_to(page, selector: str, limit: int = 400) -> None:
    for _ in range(limit):
        if page.evaluate(f"document.activeElement.matches({selector!r})"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} not reached with Tab")


def test_the_form_works_with_the_keyboard_alone(page, server, rm):
    page.goto(server["base"] + "/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    for selector, value in SEED_FORM.items():
        if selector == "#bmd_lumbar_spine":
            # A radio group is one Tab stop; the arrow keys choose within it.
            _tab_to(page, "#breastfeeding_now-unknown")
            page.keyboard.press("ArrowRight")
            assert page.is_checked("#breastfeeding_now-yes")
        _tab_to(page, selector)
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", f"{selector} shows no focus"
        page.keyboard.type(value)
    _tab_to(page, "#submit")
    page.keyboard.press("Enter")
    page.wait_for_selector("#risk-0")
    assert _risk(page) == rm.assess(SEED_CASE).risk
    # The what-if control, by keyboard too.
    _tab_to(page, "#whatif__breastfeeding_now")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert page.input_value("#whatif__breastfeeding_now") == "no"
    _tab_to(page, "#what-if-submit")
    page.keyboard.press("Enter")
    page.wait_for_selector("#what-if-risk-0")
    assert page.problems == []
