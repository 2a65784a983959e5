"""The clinician's web app (FastAPI, in-process) and its audit trail.

Form generation from the catalog, validation messages beside their fields, the
JSON API's 422/413/415 answers, cross-site and token protection, and the audit
log: verify on every kind of tampering, replay of 1,000 records.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plo_risk.data.catalog import load_catalog
from plo_risk.data.reference import reference_values
from plo_risk.data.schema import validate_frame
from plo_risk.data.synthetic import generate_cohort
from plo_risk.model.bundle import save_bundle
from plo_risk.model.ensemble import fit_bootstrap_ensemble
from plo_risk.model.zoo import make_model
from plo_risk.report import SEED_CASE
from plo_risk.serve import RiskModel
from plo_risk.web import (
    AccessError,
    AuditError,
    AuditLog,
    create_app,
    replay,
    risk_rows,
    serve,
    verify,
)
from plo_risk.web.audit import canonical_json, load_or_create_key
from plo_risk.web.present import (
    WINDOW_LABEL,
    baseline_of,
    common_denominator,
    form_groups,
    parse_form,
)
from plo_risk.web.security import is_loopback

THRESHOLDS = {"moderate": 0.02, "high": 0.10}
XGB = {"n_estimators": 30, "n_jobs": 1}
CATALOG = load_catalog()
TOKEN = "t0ken-for-the-tests-0123456789"


def _fit(n: int, *, seed: int, ensemble: bool, reference: bool, path: Path) -> Path:
    # Generator columns that are not model inputs (oracle, outcomes) are left out.
    cohort = generate_cohort(n, setting="referral", seed=seed)
    valid = validate_frame(cohort, unknown="ignore").valid
    y = valid["fracture"].to_numpy()
    X = valid[[c for c in valid.columns if c in load_catalog()]]
    model = make_model("xgboost", params=XGB, cv=3, thresholds=THRESHOLDS).fit(X, y)
    if ensemble:
        fit_bootstrap_ensemble(model, X, y, n_models=3)
    extra = {"reference": reference_values(X)} if reference else {}
    return save_bundle(model, path, model_name="xgboost", extra=extra)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A small referral xgboost model with an interval ensemble and references."""
    path = tmp_path_factory.mktemp("web-model") / "bundle"
    return _fit(3000, seed=41, ensemble=True, reference=True, path=path)


@pytest.fixture(scope="module")
def lean_bundle(tmp_path_factory) -> Path:
    """No ensemble, no references: an assessment in ~2 ms (for 1,000 replays)."""
    path = tmp_path_factory.mktemp("web-lean") / "bundle"
    return _fit(2000, seed=42, ensemble=False, reference=False, path=path)


@pytest.fixture(scope="module")
def rm(bundle) -> RiskModel:
    return RiskModel.load(bundle)


@pytest.fixture(scope="module")
def client_class():
    with warnings.catch_warnings():
        # starlette's test client prefers httpx2 and says so; httpx works.
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    return TestClient


@pytest.fixture
def make_client(rm, client_class, tmp_path):
    def make(**kwargs):
        kwargs.setdefault("audit_log", tmp_path / "audit" / "audit.jsonl")
        app = create_app(rm, **kwargs)
        return client_class(app, raise_server_exceptions=False)

    return make


@pytest.fixture
def client(make_client):
    c = make_client(keep_inputs=True)
    assert c.get("/").status_code == 200  # sets the CSRF cookie
    return c


def _form(client, record: dict, **extra) -> dict:
    data = {
        k: ("yes" if v is True else "no" if v is False else str(v))
        for k, v in record.items()
    }
    return {**data, "csrf_token": client.cookies.get("plo_risk_csrf"), **extra}


def _data_risk(html: str, ident: str = "risk-0") -> float:
    m = re.search(rf'id="{ident}" data-risk="([^"]+)"', html)
    assert m, f"no #{ident} in the page"
    return float(m.group(1))


def _log(client) -> Path:
    return client.app.state.service.audit.path


# ----------------------------------------------------------------- the form


def test_form_is_generated_from_the_catalog(client):
    html = client.get("/").text
    for group in form_groups(CATALOG):
        assert f'id="group-{group.name}"' in html
        assert f"<h2>{group.title}</h2>" in html
    for f in CATALOG:
        assert f'name="{f.name}"' in html, f.name
        if f.alt_units:
            assert f'name="{f.name}__unit"' in html
            for unit in f.alt_units:
                assert f'<option value="{unit}"' in html
        if f.dtype == "bool":
            assert (f'id="{f.name}-unknown"' in html) == f.missing
        if f.is_numeric:
            assert f'id="range-{f.name}"' in html
    # Required fields say so; the range hint follows the unit.
    assert html.count("(required)") == len(CATALOG.required)
    assert 'data-hint="0 to 499.2 nmol/L"' in html


def test_form_parsing_reads_units_and_decimal_commas():
    record, units = parse_form(
        {
            "age_years": " 35 ",
            "vitamin_d_25oh": "45",
            "vitamin_d_25oh__unit": "nmol/L",
            "bmd_lumbar_spine": "0,687",
            "bmd_lumbar_spine__unit": "g/cm2",
            "smoking": "unknown",
            "ancestry": "",
            "breastfeeding_now": "yes",
        },
        CATALOG,
    )
    assert record == {
        "age_years": "35",
        "breastfeeding_now": "yes",
        "vitamin_d_25oh": "45",
        "bmd_lumbar_spine": "0.687",
    }
    assert units == {"vitamin_d_25oh": "nmol/L"}


def test_form_post_gives_the_assessment_of_the_same_values(client, rm):
    r = client.post("/assess", data=_form(client, SEED_CASE))
    assert r.status_code == 200
    expected = rm.assess(SEED_CASE)
    assert _data_risk(r.text) == expected.risk
    html = r.text
    for needle in (
        WINDOW_LABEL,
        "women like her",
        'class="icon-array"',
        'class="band"',
        "What moves her estimate",
        "What to measure next",
        "Not a prescription",
        "What the tool did not know",
        "Basis of this estimate",
        "Gigerenzer",
        "Galesic",
        "Spiegelhalter",
    ):
        assert needle in html, needle
    assert html.count('<use href="#w"') == 1000
    assert html.count('class="hit"') == round(expected.risk * 1000)
    # The interval is explained; its values are the assessment's.
    lo, hi = expected.interval
    assert "90% interval" in html and "bootstrap" in html
    assert r.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_converted_units_and_unusual_values_are_said(client, rm):
    record = {**SEED_CASE, "vitamin_d_25oh": 45}
    r = client.post(
        "/assess", data=_form(client, record, vitamin_d_25oh__unit="nmol/L")
    )
    assert r.status_code == 200
    assert (
        _data_risk(r.text) == rm.assess(record, units={"vitamin_d_25oh": "nmol/L"}).risk
    )
    assert "45 nmol/L read as 18 ng/mL" in r.text
    assert "below the 10th percentile of the training data" in r.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("age_years", "99"),
        ("parity", "1.5"),
        ("lactation_months", "-3"),
        ("bmd_lumbar_spine", "abc"),
    ],
    ids=["out-of-range", "not-whole", "negative", "not-a-number"],
)
def test_invalid_values_come_back_on_the_form_with_their_message(
    client, rm, field, value
):
    record = {**SEED_CASE, field: value}
    r = client.post("/assess", data=_form(client, record))
    assert r.status_code == 422
    with pytest.raises(Exception) as info:
        rm.assess(record)
    (problem,) = [p for p in info.value.problems if p.field == field]
    html = r.text
    block = html[html.index(f'id="field-{field}"') :]
    block = block[: block.index('<div class="field', 10)]
    assert f'id="err-{field}"' in block
    assert problem.reason.replace("'", "&#39;") in block
    assert f'value="{value}"' in block and 'aria-invalid="true"' in block
    # Nothing lost: the other values are still in their fields.
    assert (
        'value="0.815"' in html
        and 'id="breastfeeding_now-yes" value="yes" checked' in html
    )
    assert 'id="error-summary"' in html and f'href="#{field}"' in html


def test_what_if_form_post_and_edit(client, rm):
    base = rm.assess(SEED_CASE)
    r = client.post(
        "/what-if",
        data=_form(client, SEED_CASE, whatif__breastfeeding_now="no"),
    )
    assert r.status_code == 200
    assert _data_risk(r.text) == base.risk
    after = base.what_if(breastfeeding_now=False)
    assert _data_risk(r.text, "what-if-risk-0") == after.risk
    bad = client.post(
        "/what-if", data=_form(client, SEED_CASE, whatif__calcium_intake_mg_day="-5")
    )
    assert bad.status_code == 422 and "between 0 and 5000 mg/day" in bad.text
    edit = client.post("/edit", data=_form(client, SEED_CASE))
    assert edit.status_code == 200 and 'value="0.687"' in edit.text


# --------------------------------------------------------- cross-site, tokens


def test_forms_need_the_session_token(client):
    cookie = client.get("/").headers.get("set-cookie")
    assert cookie is None  # already set by the fixture
    data = _form(client, SEED_CASE)
    assert (
        client.post("/assess", data={**data, "csrf_token": "forged"}).status_code == 403
    )
    del data["csrf_token"]
    assert client.post("/assess", data=data).status_code == 403
    # A cross-site post is refused whatever it carries.
    r = client.post(
        "/assess",
        data=_form(client, SEED_CASE),
        headers={"Origin": "http://evil.example"},
    )
    assert r.status_code == 403


def test_the_csrf_cookie_is_strict_and_http_only(make_client):
    fresh = make_client()
    cookie = fresh.get("/").headers["set-cookie"].lower()
    assert "samesite=strict" in cookie and "httponly" in cookie


def test_the_api_takes_only_json(client):
    r = client.post("/api/assess", data={"record": "x"})
    assert r.status_code == 415
    r = client.post(
        "/api/assess", content=b'{"record": {}}', headers={"content-type": "text/plain"}
    )
    assert r.status_code == 415


@pytest.fixture
def token_client(make_client):
    return make_client(token=TOKEN)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/"),
        ("get", "/healthz"),
        ("get", "/api/catalog"),
        ("post", "/api/assess"),
        ("get", "/docs"),
        ("get", "/static/web.css"),
    ],
)
def test_with_a_token_requests_without_it_get_401(token_client, method, path):
    kwargs = {"json": {"record": SEED_CASE}} if method == "post" else {}
    r = getattr(token_client, method)(path, **kwargs)
    assert r.status_code == 401
    ok = getattr(token_client, method)(
        path, headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs
    )
    assert ok.status_code == 200
    wrong = getattr(token_client, method)(
        path, headers={"Authorization": "Bearer not-the-token-at-all"}, **kwargs
    )
    assert wrong.status_code == 401


def test_a_browser_signs_in_with_the_token(token_client, rm):
    page = token_client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 401 and "Access token required" in page.text
    assert rm.version not in page.text  # nothing about the model before sign-in
    csrf = token_client.cookies.get("plo_risk_csrf")
    bad = token_client.post("/login", data={"token": "nope", "csrf_token": csrf})
    assert bad.status_code == 401 and "not the token" in bad.text
    good = token_client.post(
        "/login", data={"token": TOKEN, "csrf_token": csrf}, follow_redirects=False
    )
    assert good.status_code == 303
    assert TOKEN not in good.headers["set-cookie"]
    assert token_client.get("/").status_code == 200
    r = token_client.post("/assess", data=_form(token_client, SEED_CASE))
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("192.168.1.20", False),
        ("::", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_serve_refuses_a_network_address_without_a_token(tmp_path):
    # Refused before the model is even loaded (this path does not exist).
    with pytest.raises(AccessError, match="without an access token"):
        serve(tmp_path / "no-model", host="0.0.0.0", port=0)
    short = tmp_path / "token.txt"
    short.write_text("short\n")
    with pytest.raises(ValueError, match="at least 16 characters"):
        serve(tmp_path / "no-model", host="0.0.0.0", token_file=short)


def test_the_module_entry_refuses_too(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "plo_risk.web",
            "--model",
            str(tmp_path / "m"),
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 2
    assert "without an access token" in run.stderr
    assert not (tmp_path / "plo-risk-audit").exists()


# -------------------------------------------------------------------- the API


def test_api_assess_answers_to_dict(client, rm):
    r = client.post("/api/assess", json={"record": SEED_CASE})
    assert r.status_code == 200
    expected = json.loads(canonical_json(rm.assess(SEED_CASE).to_dict()))
    assert r.json() == expected
    assert int(r.headers["x-audit-seq"]) >= 0


def test_api_what_if(client, rm):
    body = {
        "record": SEED_CASE,
        "changes": {"breastfeeding_now": False, "calcium_intake_mg_day": 1500},
    }
    r = client.post("/api/what-if", json=body)
    assert r.status_code == 200
    after = rm.assess(SEED_CASE).what_if(
        breastfeeding_now=False, calcium_intake_mg_day=1500
    )
    assert r.json()["after"]["risk"] == after.risk
    assert r.json()["rows"]["after"][0]["risk"] == after.risk
    bad = client.post(
        "/api/what-if", json={"record": SEED_CASE, "changes": {"age_years": 30}}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "changes", "age_years"]
    assert "not modifiable" in bad.json()["detail"][0]["msg"]


DEEP = b'{"record": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", None),
        (b"", None),
        (b"[1, 2]", None),
        (b'{"units": {}}', "record"),
        (b'{"record": [1]}', "record"),
        (b'{"record": {}, "units": {"vitamin_d_25oh": 3}}', "units"),
        (b'{"record": {}, "extra": 1}', "extra"),
        (b'{"record": {"age_years": 35, "parity": 1}}', "months_postpartum"),
        (
            b'{"record": {"age_yeras": 35, "parity": 1, "months_postpartum": 2}}',
            "age_yeras",
        ),
        (
            b'{"record": {"age_years": {"a": 1}, "parity": 1, "months_postpartum": 2}}',
            "age_years",
        ),
        (
            b'{"record": {"age_years": [35], "parity": 1, "months_postpartum": 2}}',
            "age_years",
        ),
        (
            b'{"record": {"age_years": 1e999, "parity": 1, "months_postpartum": 2}}',
            "age_years",
        ),
        (
            b'{"record": {"age_years": NaN, "parity": 1, "months_postpartum": 2}}',
            "age_years",
        ),
        (
            b'{"record": {"age_years": "' + b"9" * 5000 + b'", "parity": 1, '
            b'"months_postpartum": 2}}',
            "age_years",
        ),
        (
            b'{"record": {"age_years": 35, "parity": 1, "months_postpartum": 2}, '
            b'"units": {"age_years": "days"}}',
            "age_years",
        ),
        (
            b'{"record": {"age_years": 35, "parity": true, "months_postpartum": 2}}',
            "parity",
        ),
        (DEEP, None),
        (b'{"record": {"\\ud800": 1}}', None),
    ],
    ids=[
        "not-json",
        "empty",
        "array",
        "no-record",
        "record-list",
        "unit-not-str",
        "unknown-key",
        "missing-required",
        "unknown-field",
        "object-value",
        "list-value",
        "infinite",
        "nan",
        "huge-string",
        "bad-unit",
        "bool-for-int",
        "deep",
        "lone-surrogate",
    ],
)
def test_malformed_bodies_get_422_with_field_messages(client, body, field):
    r = client.post(
        "/api/assess", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text[:500]
    detail = r.json()["detail"]
    assert "Traceback" not in r.text
    if field is not None:
        assert any(field in json.dumps(d) for d in detail), detail


def test_request_size_limits(client):
    big = {"record": {**SEED_CASE, "ancestry": "x" * 70_000}}
    r = client.post("/api/assess", json=big)
    assert r.status_code == 413 and "at most 65,536 bytes" in r.json()["detail"]

    def chunks():  # no Content-Length: counted while it streams
        for _ in range(40):
            yield b"x" * 4096

    r = client.post(
        "/api/assess", content=chunks(), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    r = client.post("/assess", data={"age_years": "1" * 70_000})
    assert r.status_code == 413


def test_catalog_health_and_docs(client, rm, bundle):
    cat = client.get("/api/catalog").json()
    assert [f["name"] for f in cat["fields"]] == CATALOG.names
    assert cat["sha256"] == CATALOG.sha256
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["model"]["version"] == rm.version
    import hashlib

    assert (
        health["model"]["bundle_sha256"]
        == hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    )
    docs = client.get("/docs")
    assert docs.status_code == 200 and "POST /api/assess" in docs.text
    spec = client.get("/openapi.json").json()
    assert {"/api/assess", "/api/what-if", "/api/catalog", "/healthz"} <= set(
        spec["paths"]
    )
    body = spec["paths"]["/api/assess"]["post"]["requestBody"]
    assert "record" in body["content"]["application/json"]["schema"]["properties"]
    assert client.get("/model-card").status_code == 404


def test_model_card_is_served_when_given(make_client, tmp_path):
    card = tmp_path / "card.html"
    card.write_text("<!DOCTYPE html><title>card</title><h1>Model card</h1>")
    c = make_client(card=card)
    assert c.get("/model-card").text.endswith("<h1>Model card</h1>")
    assert 'href="/model-card"' in c.get("/about").text


# ------------------------------------------------------------ risk rows etc.


def test_risk_rows_give_the_window_today_and_horizons_when_there(rm):
    a = rm.assess(SEED_CASE)
    base = baseline_of(rm)
    (row,) = risk_rows(a, base)
    assert row.label == WINDOW_LABEL and row.risk == a.risk
    assert row.interval == a.interval and row.baseline == rm.model.prevalence_
    assert base.setting == "referral" and base.inferred

    class Horizons:
        risk = 0.2
        interval = None
        risks = {"6m": 0.01, "12m": 0.03}

        def risk_at(self, months):
            return {6: 0.01, 12: 0.03}[months]

    rows = risk_rows(Horizons(), base)
    assert [(r.months, r.risk) for r in rows] == [(6, 0.01), (12, 0.03)]
    assert rows[0].label == "fracture within 6 months"


def test_one_denominator_per_page():
    assert common_denominator(0.3, 0.05) == 1000
    assert common_denominator(0.012, 0.00046) == 10_000


# ------------------------------------------------------------------ the audit


def test_every_assessment_is_logged_without_inputs_by_default(make_client, tmp_path):
    log = tmp_path / "a" / "audit.jsonl"
    key = tmp_path / "keys" / "audit.key"
    c = make_client(audit_log=log, audit_key_file=key)
    c.get("/")
    assert c.post("/assess", data=_form(c, SEED_CASE)).status_code == 200
    assert c.post("/api/assess", json={"record": SEED_CASE}).status_code == 200
    assert (
        c.post(
            "/api/what-if", json={"record": SEED_CASE, "changes": {"smoking": True}}
        ).status_code
        == 200
    )
    assert c.post("/api/assess", json={"record": {}}).status_code == 422  # no record
    lines = log.read_text().splitlines()
    assert len(lines) == 3
    recs = [json.loads(x) for x in lines]
    assert [r["via"] for r in recs] == ["page", "api", "api"]
    assert [r["event"] for r in recs] == ["assess", "assess", "what_if"]
    for r in recs:
        assert "inputs" not in r
        assert {
            "time",
            "model",
            "catalog_sha256",
            "package_version",
            "inputs_hmac",
            "outputs",
            "warnings",
            "prev",
            "hash",
            "mac",
            "seq",
        } <= set(r)
        assert r["model"]["bundle_sha256"] and r["model"]["version"]
    # The same patient: the same keyed hash; her values are nowhere in the log.
    assert recs[0]["inputs_hmac"] == recs[1]["inputs_hmac"]
    text = log.read_text()
    assert "0.687" not in text and "0.815" not in text and '"record"' not in text
    secret = key.read_text().strip()
    assert secret not in text
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert verify(log).ok and verify(log, key=secret.encode()).ok
    assert replay(log, c.app.state.service.model).n_skipped == 3


def test_the_log_continues_after_a_restart(make_client, tmp_path):
    log = tmp_path / "r" / "audit.jsonl"
    for _ in range(2):
        c = make_client(audit_log=log, keep_inputs=True)
        assert c.post("/api/assess", json={"record": SEED_CASE}).status_code == 200
    assert [json.loads(x)["seq"] for x in log.read_text().splitlines()] == [0, 1]
    result = verify(log)
    assert result.ok and result.n_records == 2


def _write_log(path: Path, n: int = 6) -> bytes:
    key = b"k" * 32
    trail = AuditLog(path, key=key)
    for i in range(n):
        trail.append({"event": "demo", "outputs": {"risk": i / 7, "text": "é"}})
    return key


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _put(path: Path, lines: list[bytes], *, newline: bool = True) -> None:
    path.write_bytes(b"\n".join(lines) + (b"\n" if newline else b""))


def _flip(line: bytes, at: int) -> bytes:
    b = bytearray(line)
    b[at] = ord("7") if b[at] != ord("7") else ord("8")
    return bytes(b)


@pytest.mark.parametrize("where", [0, 2, 5], ids=["first", "middle", "last"])
@pytest.mark.parametrize("offset", [0.1, 0.5, 0.97], ids=["start", "mid", "end"])
def test_verify_finds_a_changed_byte_in_any_record(tmp_path, where, offset):
    log = tmp_path / "audit.jsonl"
    _write_log(log)
    lines = _lines(log)
    lines[where] = _flip(lines[where], int(len(lines[where]) * offset))
    _put(log, lines)
    result = verify(log)
    assert not result.ok
    assert (result.first.line, result.first.kind) == (where + 1, "changed")


@pytest.mark.parametrize("where", [0, 3, 5], ids=["first", "middle", "last"])
def test_verify_finds_a_removed_record(tmp_path, where):
    log = tmp_path / "audit.jsonl"
    _write_log(log)
    lines = _lines(log)
    del lines[where]
    _put(log, lines)
    result = verify(log)
    assert result.first.kind == "removed"
    assert result.first.line == where + 1  # the line where it is missing
    assert f"seq {where}" in result.first.message


@pytest.mark.parametrize("where", [0, 2, 4])
def test_verify_finds_two_swapped_records(tmp_path, where):
    log = tmp_path / "audit.jsonl"
    _write_log(log)
    lines = _lines(log)
    lines[where], lines[where + 1] = lines[where + 1], lines[where]
    _put(log, lines)
    result = verify(log)
    assert (result.first.line, result.first.kind) == (where + 1, "reordered")
    assert {p.kind for p in result.problems} == {"reordered"}


@pytest.mark.parametrize("cut", [1, 20, 200])
def test_verify_finds_a_truncated_last_line(tmp_path, cut):
    log = tmp_path / "audit.jsonl"
    _write_log(log)
    data = log.read_bytes()
    log.write_bytes(data[:-cut])
    result = verify(log)
    assert (result.first.line, result.first.kind) == (6, "truncated")
    # ... and the server will not append to it.
    with pytest.raises(AuditError, match="incomplete"):
        AuditLog(log, key=b"k" * 32)


def test_a_rehashed_record_is_found_by_the_chain_or_the_key(tmp_path):
    log = tmp_path / "audit.jsonl"
    key = _write_log(log)
    lines = _lines(log)
    for where in (2, 5):
        rec = json.loads(lines[where])
        rec["outputs"]["risk"] = 0.0
        body = {k: v for k, v in rec.items() if k not in ("hash", "mac")}
        import hashlib

        rec["hash"] = hashlib.sha256(canonical_json(body)).hexdigest()
        changed = list(lines)
        changed[where] = canonical_json(rec)
        _put(log, changed)
        found = verify(log, key=key)
        assert (found.first.line, found.first.kind) == (where + 1, "changed")
        if where == 2:  # not last: the next record's prev shows it even without key
            assert verify(log).first.line == where + 1


def test_audit_key_is_generated_once(tmp_path):
    path = tmp_path / "k" / "audit.key"
    key = load_or_create_key(path)
    assert len(key) == 64 and load_or_create_key(path) == key
    path.write_text("short")
    with pytest.raises(AuditError, match="at least 16 bytes"):
        load_or_create_key(path)


def test_replay_reproduces_1000_logged_assessments_exactly(
    lean_bundle, client_class, tmp_path, bundle
):
    lean = RiskModel.load(lean_bundle)
    log = tmp_path / "replay" / "audit.jsonl"
    app = create_app(lean, audit_log=log, keep_inputs=True)
    service = app.state.service
    cohort = generate_cohort(1000, seed=43)
    cols = [c for c in cohort.columns if c in CATALOG]
    rows = cohort[cols].to_dict(orient="records")

    class _Request:  # what the service reads of a request
        client = None

    n = 0
    for i, row in enumerate(rows):
        record = {k: v for k, v in row.items() if v == v and v is not None}
        record = json.loads(canonical_json(record))  # as JSON would carry it
        changes = {"breastfeeding_now": False} if i % 10 == 0 else None
        try:
            service.assess(record, {}, via="api", request=_Request(), changes=changes)
        except ValueError:
            continue
        n += 1
    assert n >= 990
    result = replay(log, lean)
    assert result.ok, result.differences[:3]
    assert (result.n_records, result.n_replayed, result.n_skipped) == (n, n, 0)
    assert result.verify.ok and result.n_other_model == 0
    # Another model does not reproduce them, and replay says where.
    few = log.with_name("few.jsonl")
    few.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:20]))
    other = replay(few, RiskModel.load(bundle))
    assert other.n_other_model == 20 and len(other.differences) == 20
    assert other.differences[0].where.startswith("outputs.")


# ------------------------------------------------------------- the CLI verbs


def test_cli_audit_verify_exits_1_on_a_changed_record(tmp_path):
    from typer.testing import CliRunner

    from plo_risk.cli import app

    runner = CliRunner()
    log = tmp_path / "audit.jsonl"
    key = _write_log(log)
    (tmp_path / "audit.key").write_bytes(key)
    ok = runner.invoke(app, ["audit", "verify", "--log", str(log)])
    assert ok.exit_code == 0, ok.output
    lines = _lines(log)
    lines[2] = _flip(lines[2], len(lines[2]) // 2)
    _put(log, lines)
    broken = runner.invoke(app, ["audit", "verify", "--log", str(log)])
    assert broken.exit_code == 1
    assert "line 3: changed" in broken.output
    positional = runner.invoke(app, ["audit", "verify", str(log)])  # verify LOG
    assert positional.exit_code == 1 and "line 3: changed" in positional.output
    missing = runner.invoke(app, ["audit", "verify", "--log", str(tmp_path / "no")])
    assert missing.exit_code == 2 and "Traceback" not in missing.output


def test_cli_serve_refuses_an_open_address_without_a_token(tmp_path):
    from typer.testing import CliRunner

    from plo_risk.cli import app

    # checked before the model is loaded: the model path does not even exist
    result = CliRunner().invoke(
        app, ["serve", "--model", str(tmp_path / "none"), "--host", "0.0.0.0"]
    )
    assert result.exit_code == 2
    assert "token" in result.output and "Traceback" not in result.output


# ------------------------------------------ hostile input: our errors, no traces

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


def _no_internals(text: str) -> None:
    """A response body shows nothing of the server: no trace, no code, no path."""
    for leak in ("Traceback", 'File "', "/work/", _PACKAGE_DIR, "site-packages"):
        assert leak not in text, (leak, text[:500])


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**40), 10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["NA", "x" * 300, "1e400", "3_3"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    overrides=st.dictionaries(
        st.sampled_from([*SEED_CASE, "patient_id", "smoking", "ancestry", "junk"]),
        _json_values,
        max_size=4,
    ),
    changes=st.none()
    | st.dictionaries(
        st.sampled_from(["breastfeeding_now", "bmi", "age_years", "junk"]),
        _json_values,
        max_size=2,
    ),
    units=st.none()
    | st.dictionaries(
        st.sampled_from(["vitamin_d_25oh", "junk"]), _json_values, max_size=1
    ),
)
def test_hostile_json_gets_field_errors_never_a_trace(
    client, overrides, changes, units
):
    body: dict = {"record": {**SEED_CASE, **overrides}}
    if units is not None:
        body["units"] = units
    path = "/api/assess"
    if changes is not None:
        path, body["changes"] = "/api/what-if", changes
    r = client.post(path, json=body)
    assert r.status_code in (200, 422), r.text[:500]
    _no_internals(r.text)
    if r.status_code == 422:
        for problem in r.json()["detail"]:
            assert problem["msg"] and problem["loc"][0] == "body"


def test_a_number_too_long_for_python_is_refused_in_our_words(client):
    body = b'{"record": {"age_years": 1' + b"0" * 5000 + b"}}"
    r = client.post(
        "/api/assess", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert "more than 4,300 digits" in r.json()["detail"][0]["msg"]
    assert "set_int_max_str_digits" not in r.text


def test_an_internal_error_answers_500_without_the_trace(client, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError(f'File "{__file__}", line 1: secret state')

    monkeypatch.setattr(client.app.state.service, "assess", fail)
    for path, body in [
        ("/api/assess", {"record": SEED_CASE}),
        ("/api/what-if", {"record": SEED_CASE, "changes": {"bmi": 22}}),
    ]:
        r = client.post(path, json=body)
        assert r.status_code == 500
        assert r.json() == {
            "detail": "internal error (details are in the server's log)"
        }
        _no_internals(r.text)
        assert "secret" not in r.text
