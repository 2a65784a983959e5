"""The clinician's page and its JSON API (FastAPI, server-rendered with Jinja2).

:func:`create_app` builds the application around one :class:`RiskModel`;
:func:`serve` runs it with uvicorn (``plo-risk serve``, ``python -m plo_risk.web``).

Pages: ``GET /`` the form (generated from the catalog), ``POST /assess`` the
result (or the form again, with each field's message), ``POST /what-if`` the
result with a what-if answer (the page also asks the JSON API from a small
script), ``POST /edit`` the form filled with the values of a result, ``GET
/about`` the basis of the model, ``GET /model-card`` the full model card when one
is given. API: ``POST /api/assess`` (the body is ``RiskAssessment.to_dict()``),
``POST /api/what-if``, ``GET /api/catalog``, ``GET /healthz``; the OpenAPI
document at ``/openapi.json`` and its rendering at ``/docs``.

Every assessment, page or API, appends one record to the audit log
(:mod:`plo_risk.web.audit`).
"""

from __future__ import annotations

import hmac
import json
import os
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from plo_risk.data.schema import ValidationError
from plo_risk.serve.assessment import (
    ALREADY_FRACTURED,
    INTERVAL_LEVEL,
    RiskAssessment,
    already_fractured,
)
from plo_risk.serve.risk_model import RiskModel
from plo_risk.utils.version import package_version
from plo_risk.web.audit import AuditLog, canonical_json, load_or_create_key
from plo_risk.web.identity import load_model, model_identity
from plo_risk.web.present import (
    baseline_of,
    basis,
    cite,
    describe_changes,
    factor_views,
    form_groups,
    icon_array_svg,
    interval_band_svg,
    interval_text,
    natural_frequency,
    parse_changes,
    parse_form,
    percent,
    reference_list,
    risk_rows,
    unknowns,
    what_if_controls,
)
from plo_risk.web.security import (
    AUTH_COOKIE,
    CSRF_COOKIE,
    CSRF_FIELD,
    MAX_BODY,
    Guard,
    auth_cookie_value,
    csrf_matches,
    is_loopback,
    new_csrf_token,
    read_token_file,
    token_id,
)

__all__ = [
    "DEFAULT_AUDIT_LOG",
    "AccessError",
    "AssessBody",
    "WhatIfBody",
    "create_app",
    "serve",
]

#: The audit log when none is given: under the working folder.
DEFAULT_AUDIT_LOG = Path("plo-risk-audit") / "audit.jsonl"
# Form fields and JSON nesting beyond which a request is refused (422).
_MAX_FORM_FIELDS = 400
_MAX_RECORD_KEYS = 200
_HERE = Path(str(resources.files("plo_risk.web")))
_JSON = ("application/json",)


class AccessError(RuntimeError):
    """The server may not start as asked (a non-loopback address without a token)."""


class AssessBody(BaseModel):
    """``POST /api/assess``: one patient's values and the units they are in."""

    model_config = ConfigDict(extra="forbid")
    record: dict[str, Any] = Field(
        description="Field name to value (catalog names; see GET /api/catalog).",
        examples=[
            {
                "age_years": 35,
                "parity": 3,
                "months_postpartum": 2,
                "lactation_months": 2,
                "breastfeeding_now": True,
                "bmd_lumbar_spine": 0.687,
                "bmd_total_hip": 0.815,
            }
        ],
    )
    units: dict[str, str] = Field(
        default_factory=dict,
        description="Field name to the unit its value is in, one of the catalog's "
        "alternate units (e.g. {'vitamin_d_25oh': 'nmol/L'}).",
    )


class WhatIfBody(AssessBody):
    """``POST /api/what-if``: the values, and the modifiable factors to change."""

    changes: dict[str, Any] = Field(
        description="Modifiable field to its new value, in the canonical unit "
        "(e.g. {'breastfeeding_now': False}).",
        examples=[{"breastfeeding_now": False}],
    )


@dataclass
class _Result:
    assessment: RiskAssessment
    outputs: dict[str, Any]
    seq: int
    unknowns: Any
    rows: list
    what_if: RiskAssessment | None = None
    what_if_rows: list | None = None
    changes: dict[str, Any] | None = None


class _Service:
    """The model, its lock and the audit log: what every route shares."""

    def __init__(
        self,
        model: RiskModel,
        identity: dict[str, Any],
        audit: AuditLog,
        *,
        keep_inputs: bool,
        token: str | None,
    ):
        self.model = model
        self.identity = identity
        self.audit = audit
        self.keep_inputs = keep_inputs
        self.token = token
        self.baseline = baseline_of(model)
        self.lock = threading.Lock()

    def _client(self, request: Request) -> dict[str, Any]:
        return {
            "address": request.client.host if request.client else None,
            "token_id": token_id(self.token) if self.token else None,
        }

    def _entry(
        self,
        event: str,
        via: str,
        request: Request,
        a: RiskAssessment,
        inputs: dict[str, Any],
        outputs: dict[str, Any],
        found,
        changes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        keyed = {"record": a.record}
        if changes is not None:
            keyed["changes"] = changes
        entry = {
            "event": event,
            "via": via,
            "client": self._client(request),
            "model": self.identity,
            "catalog_sha256": self.model.catalog.sha256,
            "package_version": package_version(),
            "inputs_hmac": self.audit.inputs_hmac(keyed),
            "outputs": outputs if self.keep_inputs else _redacted(outputs),
            "warnings": found.warnings(with_text=self.keep_inputs),
        }
        if self.keep_inputs:
            entry["inputs"] = inputs
        return entry

    def assess(
        self,
        record: dict[str, Any],
        units: dict[str, str],
        *,
        via: str,
        request: Request,
        changes: dict[str, Any] | None = None,
    ) -> _Result:
        """Assess (and what-if), log, and return everything a page needs.

        Raises ValidationError (``.where`` is "record" or "changes").
        """
        with self.lock:
            try:
                a = self.model.assess(record, units=units or None)
            except ValidationError as exc:
                exc.where = "record"
                raise
            outputs = a.to_dict()
            found = unknowns(a, self.model, record, units)
            rows = risk_rows(a, self.baseline)
            after = after_rows = None
            event, inputs = "assess", {"record": record, "units": units}
            if changes is not None:
                try:
                    after = a.what_if(**changes)
                except ValidationError as exc:
                    exc.where = "changes"
                    raise
                outputs = {
                    "before": outputs,
                    "after": after.to_dict(),
                    "changes": changes,
                }
                after_rows = risk_rows(
                    after, self.baseline, denominator=rows[0].denominator
                )
                event, inputs = "what_if", {**inputs, "changes": changes}
            outputs = json.loads(canonical_json(outputs))
            written = self.audit.append(
                self._entry(event, via, request, a, inputs, outputs, found, changes)
            )
        return _Result(
            a, outputs, written["seq"], found, rows, after, after_rows, changes
        )


def _redacted(outputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs without the patient's values (``keep_inputs`` off)."""
    if "before" in outputs:
        return {
            "before": _redacted(outputs["before"]),
            "after": _redacted(outputs["after"]),
            "changes": sorted(outputs.get("changes") or {}),
        }
    out = {k: v for k, v in outputs.items() if k != "record"}
    out["factors"] = [
        {k: v for k, v in f.items() if k != "value"} for f in outputs.get("factors", [])
    ]
    out["considerations"] = [
        {"topic": c["topic"], "source": c["source"]}
        for c in outputs.get("considerations", [])
    ]
    return out


# ------------------------------------------------------------------- errors


def _problems(exc: ValidationError, where: str = "record") -> list[dict[str, Any]]:
    out = []
    for p in exc.problems:
        loc = "units" if "(in units=)" in p.reason else where
        out.append(
            {
                "loc": ["body", loc, p.field],
                "field": p.field,
                "msg": p.message,
                "reason": p.reason,
                "type": "value_error",
            }
        )
    return out


def _json_error(status: int, detail: Any) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


async def _read_json(request: Request, model: type[BaseModel]):
    """The body parsed into ``model``, or the 415/422 response that says why not."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in _JSON:
        return None, _json_error(
            415, "Content-Type must be application/json (the body is a JSON object)"
        )
    raw = await request.body()
    try:
        doc = json.loads(raw)
    except RecursionError:
        return None, _json_error(422, "JSON nested too deeply")
    except (ValueError, UnicodeDecodeError) as exc:
        if "integer string conversion" in str(exc):  # Python's advice is the server's
            limit = sys.get_int_max_str_digits()
            why = f"a number in the body has more than {limit:,} digits"
        else:
            why = str(exc)
        return None, _json_error(
            422,
            [
                {
                    "loc": ["body"],
                    "msg": f"not valid JSON: {why}",
                    "type": "json_invalid",
                }
            ],
        )
    try:
        canonical_json(doc)
    except UnicodeEncodeError:
        return None, _json_error(
            422,
            [
                {
                    "loc": ["body"],
                    "msg": "the body holds text that is not valid "
                    "Unicode (a lone surrogate)",
                    "type": "json_invalid",
                }
            ],
        )
    if not isinstance(doc, dict):
        return None, _json_error(
            422,
            [
                {
                    "loc": ["body"],
                    "msg": "the body must be a JSON object",
                    "type": "type_error",
                }
            ],
        )
    try:
        body = model.model_validate(doc)
    except PydanticError as exc:
        return None, _json_error(
            422,
            [
                {
                    "loc": ["body", *map(str, e["loc"])],
                    "msg": e["msg"],
                    "type": e["type"],
                }
                for e in exc.errors(include_url=False, include_input=False)
            ],
        )
    for name in ("record", "units", "changes"):
        part = getattr(body, name, None)
        if part is not None and len(part) > _MAX_RECORD_KEYS:
            return None, _json_error(
                422,
                [
                    {
                        "loc": ["body", name],
                        "msg": f"at most {_MAX_RECORD_KEYS} keys",
                        "type": "too_long",
                    }
                ],
            )
    return body, None


# --------------------------------------------------------------------- app


def create_app(
    model: RiskModel | str | os.PathLike,
    *,
    audit_log: str | os.PathLike = DEFAULT_AUDIT_LOG,
    audit_key_file: str | os.PathLike | None = None,
    keep_inputs: bool = False,
    token: str | None = None,
    card: str | os.PathLike | None = None,
    max_body: int = MAX_BODY,
) -> FastAPI:
    """The clinician's web application around one model.

    Parameters
    ----------
    model : RiskModel, str or PathLike
        The model, or a bundle folder / MLflow URI (``models:/plo-risk@champion``).
    audit_log : str or PathLike, default="plo-risk-audit/audit.jsonl"
        The append-only audit log (created, or continued).
    audit_key_file : str or PathLike, default=None
        The audit key (HMAC of inputs, record MACs); generated on first start when
        absent. Default: ``audit.key`` beside the log.
    keep_inputs : bool, default=False
        Also log the inputs (needed by ``audit replay``); off, the log holds only
        their keyed hash and outputs without the patient's values.
    token : str, default=None
        Access token every request must carry (``Authorization: Bearer``, or the
        cookie ``POST /login`` sets). None: no login.
    card : str or PathLike, default=None
        A model card (``plo-risk report``) served at ``/model-card``.
    max_body : int, default=65536
        Largest request body in bytes (413 beyond).

    Returns
    -------
    fastapi.FastAPI
    """
    if isinstance(model, RiskModel):
        rm, identity = model, model_identity(model)
    else:
        rm, identity = load_model(model)
    log_path = Path(audit_log)
    key_path = (
        Path(audit_key_file) if audit_key_file else log_path.with_name("audit.key")
    )
    audit = AuditLog(log_path, key=load_or_create_key(key_path))
    service = _Service(rm, identity, audit, keep_inputs=keep_inputs, token=token)
    card_path = Path(card) if card else None
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    templates.env.filters["cite"] = cite
    templates.env.globals.update(
        percent=percent,
        natural_frequency=natural_frequency,
        interval_level=INTERVAL_LEVEL,
        references=reference_list(),
        version=package_version(),
    )
    catalog = rm.catalog
    groups = form_groups(catalog)
    the_basis = basis(rm)

    app = FastAPI(
        title="plo_risk: PLO fracture risk",
        version=package_version(),
        description=(
            "Explained fracture-risk estimates for pregnancy- and lactation-"
            "associated osteoporosis. Research software on synthetic data: not a "
            "medical device. Every assessment is written to an audit log."
        ),
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")

    def csrf_of(request: Request) -> tuple[str, bool]:
        value = request.cookies.get(CSRF_COOKIE)
        return (value, False) if value else (new_csrf_token(), True)

    def page(request: Request, name: str, context: dict, status: int = 200):
        csrf, fresh = csrf_of(request)
        context = {
            "csrf": csrf,
            "csrf_field": CSRF_FIELD,
            "model_name": rm.name,
            "model_version": rm.version,
            "identity": identity,
            "card": card_path is not None,
            "basis": the_basis,
            "baseline": service.baseline,
            "login": service.token is not None,
            **context,
        }
        response = templates.TemplateResponse(
            request, name, context, status_code=status
        )
        if fresh:
            response.set_cookie(
                CSRF_COOKIE,
                csrf,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path="/",
            )
        return response

    def form_page(request, values=None, units=None, problems=None, status=200):
        errors: dict[str, str] = {}
        summary = []
        for p in problems or []:
            label = catalog[p.field].label if p.field in catalog else p.field
            if p.field in catalog and p.field not in errors:
                errors[p.field] = p.reason
            anchor = None
            if p.field in catalog:
                anchor = p.field
                if catalog[p.field].dtype == "bool":
                    anchor = f"{p.field}-yes"
            summary.append({"anchor": anchor, "label": label, "reason": p.reason})
        return page(
            request,
            "form.html",
            {
                "groups": groups,
                "values": values or {},
                "units": units or {},
                "errors": errors,
                "summary": summary,
            },
            status,
        )

    async def unauthorized(request: Request):
        wants_html = "text/html" in request.headers.get("accept", "")
        if wants_html:
            return page(request, "login.html", {"wrong": False, "anonymous": True}, 401)
        return JSONResponse(
            {"detail": "an access token is required (Authorization: Bearer <token>)"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    async def posted_form(request: Request):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return None, _json_error(415, "a form post is expected")
        try:
            form = await request.form(max_files=0, max_fields=_MAX_FORM_FIELDS)
        except Exception:  # noqa: BLE001 - the multipart parser raises several types
            return None, _json_error(422, "the form could not be read")
        data = {k: v for k, v in form.items() if isinstance(v, str)}
        if not csrf_matches(request, data.get(CSRF_FIELD)):
            return None, HTMLResponse(
                templates.get_template("error.html").render(
                    title="Form expired",
                    message="This form was not sent from this page's session (cross-"
                    "site request protection). Go back, reload the page and send it "
                    "again.",
                    version=package_version(),
                ),
                status_code=403,
            )
        return data, None

    def result_page(
        request, result: _Result, record, units, status=200, what_if_errors=()
    ):
        a = result.assessment
        rows = result.rows
        main = rows[-1]
        given = set(record)
        context = {
            "a": a,
            "rows": rows,
            "icon_array": icon_array_svg(
                main.risk,
                title=f"Icon array: {natural_frequency(main.risk)} women like her "
                f"(shaded) have a {main.label}; the others do not.",
            ),
            "icon_risk": main,
            "bands": [
                interval_band_svg(
                    r,
                    title=f"Her estimated risk {percent(r.risk)}"
                    + (
                        f", {INTERVAL_LEVEL:.0%} interval {percent(r.interval[0])} "
                        f"to {percent(r.interval[1])}"
                        if r.interval
                        else ""
                    )
                    + (
                        f", average {percent(r.baseline)}"
                        if r.baseline is not None
                        else ""
                    ),
                )
                for r in rows
            ],
            "interval_text": interval_text(a, rm),
            "factors": factor_views(a, catalog, given),
            "measure_next": a.missing[:3],
            "controls": what_if_controls(a, catalog),
            "considerations": a.considerations,
            "already_fractured": ALREADY_FRACTURED
            if already_fractured(a.record)
            else "",
            "unknowns": result.unknowns,
            "record": record,
            "units": units,
            "seq": result.seq,
            "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "what_if": result.what_if,
            "what_if_rows": result.what_if_rows,
            "what_if_text": describe_changes(result.changes or {}, catalog),
            "changes": result.changes or {},
            "what_if_errors": list(what_if_errors),
        }
        return page(request, "result.html", context, status)

    # --------------------------------------------------------------- pages
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def form(request: Request):
        return form_page(request)

    @app.post("/assess", response_class=HTMLResponse, include_in_schema=False)
    async def assess_page(request: Request):
        data, error = await posted_form(request)
        if error is not None:
            return error
        record, units = parse_form(data, catalog)
        try:
            result = await run_in_threadpool(
                service.assess, record, units, via="page", request=request
            )
        except ValidationError as exc:
            return form_page(request, data, units, exc.problems, 422)
        return result_page(request, result, record, units)

    @app.post("/what-if", response_class=HTMLResponse, include_in_schema=False)
    async def what_if_page(request: Request):
        data, error = await posted_form(request)
        if error is not None:
            return error
        record, units = parse_form(data, catalog)
        changes = parse_changes(data, catalog)
        try:
            result = await run_in_threadpool(
                service.assess,
                record,
                units,
                via="page",
                request=request,
                changes=changes or None,
            )
        except ValidationError as exc:
            if getattr(exc, "where", "record") == "record":
                return form_page(request, data, units, exc.problems, 422)
            base = await run_in_threadpool(
                service.assess, record, units, via="page", request=request
            )
            return result_page(
                request, base, record, units, 422, what_if_errors=exc.problems
            )
        return result_page(request, result, record, units)

    @app.post("/edit", response_class=HTMLResponse, include_in_schema=False)
    async def edit(request: Request):
        data, error = await posted_form(request)
        if error is not None:
            return error
        _, units = parse_form(data, catalog)
        return form_page(request, data, units)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return FileResponse(
            _HERE / "static" / "favicon.svg", media_type="image/svg+xml"
        )

    @app.get("/about", response_class=HTMLResponse, include_in_schema=False)
    async def about(request: Request):
        return page(request, "about.html", {})

    @app.get("/model-card", include_in_schema=False)
    async def model_card_page(request: Request):
        if card_path is None or not card_path.is_file():
            return HTMLResponse(
                templates.get_template("error.html").render(
                    title="No model card",
                    message="This server was started without a model card. "
                    "`plo-risk report` writes one; start the server with --card FILE.",
                    version=package_version(),
                ),
                status_code=404,
            )
        return FileResponse(card_path, media_type="text/html")

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_form(request: Request):
        if service.token is None:
            return RedirectResponse("/", status_code=303)
        return page(request, "login.html", {"wrong": False, "anonymous": True})

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        if service.token is None:
            return RedirectResponse("/", status_code=303)
        data, error = await posted_form(request)
        if error is not None:
            return error
        given = str(data.get("token", "")).strip()
        if not hmac.compare_digest(given.encode(), service.token.encode()):
            return page(request, "login.html", {"wrong": True, "anonymous": True}, 401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            AUTH_COOKIE,
            auth_cookie_value(service.token),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    # ----------------------------------------------------------------- API
    @app.post(
        "/api/assess",
        summary="Assess one patient",
        description="Validates the record against the catalog, returns "
        "`RiskAssessment.to_dict()` and appends one audit record (its number in the "
        "`X-Audit-Seq` header). Bad values: 422 naming each field.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": AssessBody.model_json_schema()}
                },
            }
        },
        responses={
            200: {"description": "RiskAssessment.to_dict()"},
            413: {"description": "Body too large"},
            415: {"description": "Not application/json"},
            422: {"description": "Invalid values, one entry per field"},
        },
    )
    async def api_assess(request: Request):
        body, error = await _read_json(request, AssessBody)
        if error is not None:
            return error
        try:
            result = await run_in_threadpool(
                service.assess, body.record, body.units, via="api", request=request
            )
        except ValidationError as exc:
            return _json_error(422, _problems(exc))
        return JSONResponse(result.outputs, headers={"X-Audit-Seq": str(result.seq)})

    @app.post(
        "/api/what-if",
        summary="What if modifiable factors change",
        description="Assesses the record, then the record with `changes` (modifiable "
        "fields only, canonical units): `{before, after, changes, rows}`. One audit "
        "record.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": WhatIfBody.model_json_schema()}
                },
            }
        },
        responses={
            200: {"description": "before and after: RiskAssessment.to_dict()"},
            413: {"description": "Body too large"},
            415: {"description": "Not application/json"},
            422: {"description": "Invalid values or changes, one entry per field"},
        },
    )
    async def api_what_if(request: Request):
        body, error = await _read_json(request, WhatIfBody)
        if error is not None:
            return error
        try:
            result = await run_in_threadpool(
                service.assess,
                body.record,
                body.units,
                via="api",
                request=request,
                changes=body.changes,
            )
        except ValidationError as exc:
            return _json_error(422, _problems(exc, getattr(exc, "where", "record")))
        out = {
            **result.outputs,
            "rows": {
                "before": [r.to_dict() for r in result.rows],
                "after": [r.to_dict() for r in result.what_if_rows or []],
            },
            "description": describe_changes(body.changes, catalog),
        }
        return JSONResponse(out, headers={"X-Audit-Seq": str(result.seq)})

    @app.get("/api/catalog", summary="The input fields (the feature catalog)")
    async def api_catalog():
        return {
            "sha256": catalog.sha256,
            "fields": [
                {
                    "name": f.name,
                    "group": f.group,
                    "label": f.label,
                    "dtype": f.dtype,
                    "unit": f.unit,
                    "alt_units": f.alt_units,
                    "range": list(f.range) if f.range else None,
                    "categories": list(f.categories),
                    "missing": f.missing,
                    "modifiable": f.modifiable,
                    "direction": f.direction,
                    "reference": f.reference,
                }
                for f in catalog
            ],
        }

    @app.get("/healthz", summary="Liveness, and which model answers")
    async def healthz():
        return {
            "status": "ok",
            "model": identity,
            "catalog_sha256": catalog.sha256,
            "package_version": package_version(),
            "audit_records": service.audit.n_records,
        }

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs(request: Request):
        return page(request, "docs.html", {"openapi": app.openapi()})

    # ----------------------------------------------------------- errors
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _json_error(exc.status_code, exc.detail)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        # Never the exception's text or trace: they name server paths and code.
        return _json_error(500, "internal error (details are in the server's log)")

    app.add_middleware(Guard, token=token, max_body=max_body, unauthorized=unauthorized)
    return app


def serve(
    model: RiskModel | str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token_file: str | os.PathLike | None = None,
    audit_log: str | os.PathLike = DEFAULT_AUDIT_LOG,
    audit_key_file: str | os.PathLike | None = None,
    keep_inputs: bool = False,
    card: str | os.PathLike | None = None,
    max_body: int = MAX_BODY,
    log_level: str = "info",
) -> None:
    """Run the web app with uvicorn until stopped (``plo-risk serve``).

    Parameters
    ----------
    model : RiskModel, str or PathLike
        As :func:`create_app`.
    host : str, default="127.0.0.1"
        Address to bind. Any address but loopback needs ``token_file``.
    port : int, default=8000
    token_file : str or PathLike, default=None
        A file holding the access token (at least 16 characters).
    audit_log, audit_key_file, keep_inputs, card, max_body
        As :func:`create_app`.
    log_level : str, default="info"
        uvicorn's log level (its access log never holds patient values: they
        travel in request bodies).

    Raises
    ------
    AccessError
        A non-loopback ``host`` without ``token_file``; checked before the model is
        loaded.
    """
    token = read_token_file(token_file) if token_file else None
    if token is None and not is_loopback(host):
        raise AccessError(
            f"host={host!r}: refusing to serve patient data on a non-loopback "
            "address without an access token; pass --token-file FILE (or bind to "
            "127.0.0.1)"
        )
    app = create_app(
        model,
        audit_log=audit_log,
        audit_key_file=audit_key_file,
        keep_inputs=keep_inputs,
        token=token,
        card=card,
        max_body=max_body,
    )
    uvicorn.run(
        app,
        host=host,
        port=int(port),
        workers=1,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
    )
