"""The clinician API: one patient in, an explained, calibrated risk out.

>>> from plo_risk import RiskModel                          # doctest: +SKIP
>>> model = RiskModel.load("models:/plo-risk@champion")     # doctest: +SKIP
>>> a = model.assess({"age_years": 33, "parity": 2, "months_postpartum": 3,
...                   "lactation_months": 3, "breastfeeding_now": True,
...                   "z_lumbar_spine": -2.6})              # doctest: +SKIP
>>> print(a)                                                # doctest: +SKIP

:class:`RiskModel` is the one door into a fitted model: :meth:`RiskModel.predict_frame`
answers every consumer that scores rows (batch scoring, the MLflow pyfunc, the
model card), :meth:`RiskModel.assess` one patient with her explanation.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from plo_risk.data.catalog import Catalog, load_catalog
from plo_risk.data.schema import (
    ID_COLUMN,
    OUTCOME_COLUMN,
    OUTCOME_DEFINITION,
    Problem,
    ValidatedFrame,
    ValidationError,
    is_missing,
    validate_frame,
    validate_record,
)
from plo_risk.data.synthetic import expected_prevalence
from plo_risk.explain import (
    NOT_KNOWN,
    contributions,
    explain_cohort,
    explainer_for,
    fold_contributions,
    horizon_contributions,
    plot_waterfall,
)
from plo_risk.model.bundle import BundleInfo, bundle_digest, load_bundle, save_bundle
from plo_risk.model.calibration import recalibrate, split_margin
from plo_risk.model.ensemble import ensemble_risks
from plo_risk.model.families import family_of
from plo_risk.model.horizon import (
    END,
    INTERVAL_MEANING,
    INTERVENTIONS,
    horizon_label,
    intervention_support,
    missing_group,
    parse_horizon,
)
from plo_risk.serve.assessment import (
    INTERVAL_LEVEL,
    Factor,
    MissingInput,
    RiskAssessment,
    not_known_factor,
)
from plo_risk.serve.authenticity import check_download, registry_pin
from plo_risk.serve.tracking import ensure_tracking_uri, require_store

__all__ = ["EXPLAIN_OPTIONS", "SETTINGS", "PreparedFrame", "RiskModel"]

#: Which rows :meth:`RiskModel.predict_frame` explains: none, those in a category
#: above "low", or all.
EXPLAIN_OPTIONS = ("none", "flagged", "all")
#: Settings a model can be moved to by name (:meth:`RiskModel.for_setting`).
SETTINGS = ("population", "referral")
# Columns that travel with a cohort but are not model inputs.
_NOT_INPUTS = (ID_COLUMN, OUTCOME_COLUMN, "true_risk")
# How an assessment names a setting a model was moved to by name.
_SETTING_NAMES = {
    "population": "all deliveries (the population setting)",
    "referral": "women referred with suspected PLO (the referral setting)",
}
_SITE_LABELS = {
    "lumbar_spine": "a DXA of the lumbar spine",
    "femoral_neck": "a DXA of the femoral neck",
    "total_hip": "a DXA of the total hip",
}


# --------------------------------------------------------------- the model


class RiskModel:
    """A fitted PLO fracture-risk model for clinicians and apps.

    Load one with :meth:`load` (a bundle folder, or an MLflow URI such as
    ``models:/plo-risk@champion`` or ``runs:/<run id>/model``); loading never
    executes code or unpickles.

    Parameters
    ----------
    model : PlattCalibratedClassifier
        A fitted model of :func:`plo_risk.model.make_model`.
    info : BundleInfo, default=None
        What the bundle says about the model (version, metrics, reference values).
    catalog : Catalog, default=None
    source : str, default=None
        Where the model was loaded from (bundle folder or MLflow URI); set by
        :meth:`load`. The model card logs itself to the MLflow run of a model
        loaded from ``models:/...`` or ``runs:/...``.
    """

    def __init__(
        self,
        model,
        info=None,
        *,
        catalog: Catalog | None = None,
        source: str | None = None,
    ):
        self.model = model
        self.info = info
        self.catalog = catalog or load_catalog()
        self.source = source
        #: The sha256 of the bundle the model was loaded from
        #: (:func:`~plo_risk.model.bundle.bundle_digest`, checked against the
        #: registry for ``models:/`` and ``runs:/``); None for a model never saved.
        self.bundle_sha256: str | None = None

    # ------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        source: str | Path,
        *,
        catalog: Catalog | None = None,
        public_key: Any = None,
    ) -> RiskModel:
        """Load from a bundle folder or an MLflow model URI.

        A model from MLflow is checked against the registry before it is read: the
        version's ``plo_risk.bundle_sha256`` and ``plo_risk.code_sha256`` tags must
        match the downloaded bundle and code file (see
        :mod:`plo_risk.serve.authenticity`). Nothing downloaded is executed.

        Parameters
        ----------
        source : str or Path
            A bundle folder, ``models:/<name>@<alias>``, ``models:/<name>/<version>``
            or ``runs:/<run id>/model``.
        catalog : Catalog, default=None
        public_key : str, Path, bytes or Ed25519PublicKey, default=None
            When given, the bundle must carry a valid signature by this key
            (:func:`plo_risk.sign_bundle`), for bundles outside MLflow above all.

        Returns
        -------
        RiskModel

        Raises
        ------
        plo_risk.model.BundleError
            A changed, missing or extra file, another catalog, a bundle or code
            file that is not the one the registry recorded, or (with
            ``public_key``) a missing or wrong signature.
        FileNotFoundError
            Nothing at ``source``.
        """
        text = str(source)
        if text.startswith(("models:/", "runs:/")):
            import mlflow  # optional heavy import: only for MLflow model URIs

            ensure_tracking_uri(require_store())
            pin = registry_pin(text)
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    local = mlflow.artifacts.download_artifacts(
                        artifact_uri=pin.download_uri, dst_path=tmp
                    )
                except Exception as exc:  # noqa: BLE001 - MLflow raises many types
                    raise FileNotFoundError(
                        f"{text}: cannot be fetched from MLflow at "
                        f"{mlflow.get_tracking_uri()} ({exc})"
                    ) from None
                bundle = check_download(local, pin)
                model, info = load_bundle(
                    bundle, catalog=catalog, public_key=public_key
                )
                digest = bundle_digest(bundle)
            rm = cls(model, info, catalog=catalog, source=text)
            rm.bundle_sha256 = digest
            return rm
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such bundle folder")
        model, info = load_bundle(path, catalog=catalog, public_key=public_key)
        rm = cls(model, info, catalog=catalog, source=str(path))
        rm.bundle_sha256 = bundle_digest(path)
        return rm

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the model as a bundle folder (see :mod:`plo_risk.model.bundle`)."""
        info = self.info
        return save_bundle(
            self.model,
            path,
            model_name=info.model_name if info else "model",
            metrics=info.metrics if info else None,
            training_data=info.training_data if info else None,
            extra={
                **(info.extra if info else {}),
                "model_version": info.model_version if info else None,
            },
            catalog=self.catalog,
            overwrite=overwrite,
        )

    def for_setting(
        self, *, prevalence: float | None = None, setting: str | None = None
    ) -> RiskModel:
        """This model moved to another setting's outcome prevalence.

        An intercept shift (:func:`plo_risk.model.recalibrate`): the ranking and
        the explanations stay, the risks move to the new setting's level. A model
        trained on an enriched referral cohort over-predicts a population tenfold
        or more without it.

        Parameters
        ----------
        prevalence : float, default=None
            The new setting's outcome prevalence, in (0, 1).
        setting : {"population", "referral"}, default=None
            A setting by name: the mean outcome of the generator's cohort of that
            setting (:func:`plo_risk.synthetic.expected_prevalence`; the
            population's is set from the incidence of [@kasahara2024]).

        Returns
        -------
        RiskModel
            A copy whose version says the prevalence (``...+prevalence=0.00046``);
            this model itself when neither is given.

        Raises
        ------
        ValueError
            For an unknown setting, both arguments, or a prevalence outside (0, 1).
        """
        if setting is not None:
            if setting not in SETTINGS:
                raise ValueError(
                    f"The 'setting' parameter must be one of {', '.join(SETTINGS)}. "
                    f"Got {setting!r} instead."
                )
            if prevalence is not None:
                raise ValueError("Give prevalence= or setting=, not both.")
            # The mean outcome of the setting: the oracle's, so a moved model's
            # average risk is that setting's share of women with the outcome.
            prevalence = expected_prevalence(setting)
        if prevalence is None:
            return self
        moved = recalibrate(self.model, prevalence=prevalence)
        if self.horizon_model is not None:
            # The same setting for every horizon: one intercept shift, solved at
            # the end of the window, where the prevalence is defined.
            moved.horizon_ = self.horizon_model.with_prevalence(prevalence, END)
        name = _SETTING_NAMES.get(setting or "") or (
            f"a setting with outcome prevalence {prevalence:.3%}"
        )
        return self.with_model(
            moved,
            f"{self.version}+prevalence={prevalence:g}",
            setting={"name": name, "prevalence": float(prevalence)},
        )

    def with_model(
        self, model, version: str, *, setting: Mapping[str, Any] | None = None
    ) -> RiskModel:
        """This model with its fitted estimator replaced (a recalibrated copy) and
        a new version, keeping everything else the bundle says (``setting``: the
        name and prevalence of the setting it now describes)."""
        info = self.info
        if info is not None:
            extra = dict(info.extra)
            if setting is not None:
                extra["setting"] = dict(setting)
            info = dataclasses.replace(info, model_version=version, extra=extra)
        else:
            info = BundleInfo(
                model_name=self.name,
                model_version=version,
                created="",
                catalog_sha256=self.catalog.sha256,
                versions={},
                training_data={},
                metrics={},
                thresholds=dict(model.thresholds or {}),
                extra={} if setting is None else {"setting": dict(setting)},
            )
        return type(self)(model, info, catalog=self.catalog, source=self.source)

    @property
    def horizon(self) -> str:
        """What the model's risk is the probability of, over which time."""
        extra = self.info.extra if self.info else {}
        return str(extra.get("outcome") or OUTCOME_DEFINITION)

    @property
    def setting(self) -> str:
        """The population the model's risks are calibrated to: the setting it was
        moved to (:meth:`for_setting`), else its training data."""
        extra = self.info.extra if self.info else {}
        moved = extra.get("setting") or {}
        if moved.get("name"):
            return str(moved["name"])
        data = extra.get("training_description")
        return f"its training data ({data})" if data else "its training data"

    @property
    def average_risk(self) -> float:
        """The mean risk of the model's setting: its outcome prevalence."""
        return float(getattr(self.model, "prevalence_", float("nan")))

    @property
    def version(self) -> str:
        """The model version recorded in its bundle."""
        return self.info.model_version if self.info else "unsaved"

    @property
    def name(self) -> str:
        """The bundle's model name, else the model's family."""
        if self.info is not None and self.info.model_name:
            return str(self.info.model_name)
        return self.family.name

    @property
    def family(self):
        """The model family (:mod:`plo_risk.model.families`) of the classifier."""
        return family_of(self.model.estimator_)

    @property
    def thresholds(self) -> dict[str, float]:
        """Risk category thresholds stored with the model."""
        return dict(self.model.thresholds or {})

    @property
    def reference(self) -> dict[str, list]:
        """Training-data reference values per field (quantiles; no rows)."""
        return dict((self.info.extra if self.info else {}).get("reference") or {})

    # ----------------------------------------------------------- horizons
    @property
    def horizon_model(self):
        """The horizon model stored with the model (:mod:`plo_risk.model.horizon`),
        or None: then the risk is the binary model's, over the whole window."""
        return getattr(self.model, "horizon_", None)

    @property
    def horizons(self) -> list[str]:
        """The horizons the model reports (``["3m", "6m", "12m", "end"]``), or []."""
        hm = self.horizon_model
        return [] if hm is None else [horizon_label(h) for h in hm.horizons]

    @property
    def default_horizon(self) -> float | str | None:
        """The horizon of :attr:`RiskAssessment.risk` and of ``risk`` in scored
        rows: to the end of the window (18 months postpartum) when reported, the
        outcome the binary models, the thresholds and every evaluation of
        ``risk`` share; else the longest reported. None without a horizon model."""
        hm = self.horizon_model
        if hm is None:
            return None
        if END in hm.horizons:
            return END
        return max(float(h) for h in hm.horizons)

    @property
    def default_horizon_label(self) -> str | None:
        h = self.default_horizon
        return None if h is None else horizon_label(h)

    def horizon_label_of(self, months: Any) -> str:
        """The label of a horizon a caller gave (``6``, ``"6m"``, ``"end"``)."""
        if self.horizon_model is None:
            raise ValueError(
                f"{self.name} has no horizon model: its risk is over the whole "
                "window only (train with horizon.enabled: true)"
            )
        return horizon_label(parse_horizon(months))

    @property
    def interval_meaning(self) -> str:
        """What the model's intervals are and how they were checked."""
        hm_interval = getattr(self.model, "horizon_interval_", None)
        if self.horizon_model is not None and hm_interval is not None:
            coverage = ", ".join(
                f"{k} {v:.0%}" for k, v in (hm_interval.coverage_ or {}).items()
            )
            return (
                f"{INTERVAL_MEANING} (coverage on its calibration cohorts: {coverage})"
            )
        return (
            "the spread of the risk over the bundle's bootstrap refits: it shows "
            "how much the fitted model could vary, not how far it may be from her "
            "true risk"
        )

    def horizon_risks(
        self,
        X: pd.DataFrame,
        horizons: Any = None,
        *,
        changes: Mapping[str, Any] | None = None,
        intervals: bool = False,
    ) -> pd.DataFrame:
        """Risks (and 90% intervals) at each horizon of validated model inputs."""
        hm = self.horizon_model
        hs = [parse_horizon(h) for h in (horizons or hm.horizons)]
        out = hm.risk(X, hs, changes=changes)
        interval = getattr(self.model, "horizon_interval_", None)
        if intervals and interval is not None:
            groups = missing_group(X, self.catalog)
            for h in hs:
                label = horizon_label(h)
                lo, hi = interval.interval(
                    out[f"risk_{label}"].to_numpy(), label, groups
                )
                out[f"risk_{label}_low"] = lo
                out[f"risk_{label}_high"] = hi
        return out

    def _horizon_assessment(
        self, canonical: Mapping[str, Any], changes: Mapping[str, Any] | None = None
    ):
        """Risks, intervals and the default horizon's explanation of one record."""
        frame = self._frame(canonical)
        hm = self.horizon_model
        table = self.horizon_risks(frame, changes=changes, intervals=True)
        risks, intervals = {}, {}
        for h in hm.horizons:
            label = horizon_label(h)
            risks[label] = float(table[f"risk_{label}"].iloc[0])
            if f"risk_{label}_low" in table.columns:
                intervals[label] = (
                    float(table[f"risk_{label}_low"].iloc[0]),
                    float(table[f"risk_{label}_high"].iloc[0]),
                )
        expl = horizon_contributions(hm, frame, self.default_horizon, changes=changes)
        values = expl.values.to_numpy()[0]
        return values, float(expl.base[0]), list(expl.values.columns), risks, intervals

    def _risk_at(self, assessment: RiskAssessment, months: Any) -> float:
        label = self.horizon_label_of(months)
        changes = (assessment.intervention or {}).get("course_changes")
        table = self.horizon_risks(
            self._frame(assessment.record), [parse_horizon(months)], changes=changes
        )
        return float(table[f"risk_{label}"].iloc[0])

    def _interval_at(self, assessment: RiskAssessment, months: Any):
        self.horizon_label_of(months)  # refuses a model without horizons
        changes = (assessment.intervention or {}).get("course_changes")
        return self._interval_at_record(assessment.record, months, changes)

    def _baseline_at(self, months: Any) -> float | None:
        hm = self.horizon_model
        if hm is None:
            return None
        return hm.prevalence_.get(horizon_label(parse_horizon(months)))

    def _intervene(
        self, assessment: RiskAssessment, changes: dict[str, Any]
    ) -> RiskAssessment:
        """What-if as an intervention from the assessment on (horizon models)."""
        hm = self.horizon_model
        course, notes, unknown, unanswered = {}, [], [], []
        for name, value in changes.items():
            known, basis = intervention_support(hm, name)
            if not known:
                unknown.append(f"{name}={value!r}: {basis}")
                unanswered.append(name)
                continue
            if name == "breastfeeding_now" and value is not False:
                raise ValidationError(
                    [
                        Problem(
                            name,
                            value,
                            "what-if can stop breastfeeding now (False), not "
                            "restart it",
                        )
                    ]
                )
            if name == "smoking" and value is not False:
                raise ValidationError(
                    [Problem(name, value, "what-if answers stopping (False) only")]
                )
            course[INTERVENTIONS[name]["course"]] = (
                0.0 if isinstance(value, bool) else float(value)
            )
            notes.append(
                f"{name}={value!r} means {INTERVENTIONS[name]['means']}; {basis}"
            )
        if course:
            values, base, fields, risks, intervals = self._horizon_assessment(
                assessment.record, course
            )
            risk = risks[self.default_horizon_label]
            factors = self._factors(assessment.record, values, fields, None)
        else:
            risks, intervals = dict(assessment.risks), dict(assessment.intervals)
            risk, base, factors = (
                assessment.risk,
                assessment.base_log_odds,
                list(assessment.factors),
            )
        text = "; ".join(notes + unknown) or "no change"
        if unknown and not course:
            text = "no answer: " + text
        return dataclasses.replace(
            assessment,
            risk=risk,
            category=str(self.model.categorize([risk])[0]),
            base_log_odds=base,
            factors=factors,
            risks=risks,
            intervals=intervals,
            intervention={
                "changes": {k: v for k, v in changes.items()},
                "course_changes": course,
                "answered": sorted(k for k in changes if k not in unanswered),
                "not_answered": unanswered,
                "text": text,
            },
        )

    # ----------------------------------------------------------- scoring
    def prepare(self, frame: pd.DataFrame | ValidatedFrame) -> PreparedFrame:
        """Validate a frame and build its model matrix, ahead of :meth:`predict_frame`.

        Batch scoring prepares the next chunk on a reader thread while this one is
        predicted; ``predict_frame(model.prepare(frame))`` equals
        ``predict_frame(frame)``.

        Parameters
        ----------
        frame : pandas.DataFrame or ValidatedFrame
            Raw rows (validated here, columns that are not catalog fields
            ignored) or the result of :func:`plo_risk.validate_frame`.

        Returns
        -------
        PreparedFrame
        """
        res = (
            frame
            if isinstance(frame, ValidatedFrame)
            else validate_frame(frame, unknown="ignore", catalog=self.catalog)
        )
        X = _inputs(res.valid)
        if len(X):
            matrix, finish = split_margin(self.model.estimator_, X)
        else:
            matrix, finish = None, None
        return PreparedFrame(res, X, matrix, finish)

    def predict_frame(
        self,
        frame: pd.DataFrame | ValidatedFrame | PreparedFrame,
        *,
        explain: str = "none",
        top_k: int = 3,
        units: Mapping[str, str] | None = None,
    ) -> pd.DataFrame:
        """Risk, category and the top factors of every row: the one call into a model.

        Every consumer that scores rows asks this (batch scoring, the MLflow pyfunc,
        the model card), so they all give the same numbers.

        Parameters
        ----------
        frame : pandas.DataFrame, ValidatedFrame or PreparedFrame
            Raw rows (validated here against the catalog; columns that are not
            catalog fields are ignored), the result of
            :func:`plo_risk.validate_frame`, or of :meth:`prepare`.
        explain : {"none", "flagged", "all"}, default="none"
            Which rows get their ``top_k`` factors: none, those in a category
            above ``"low"``, or all.
        top_k : int, default=3
            Factors per explained row.
        units : Mapping, default=None
            Alternate units of whole columns (raw frames only), as in
            :func:`plo_risk.validate_frame`.

        Returns
        -------
        pandas.DataFrame
            One row per input row, indexed like the input: ``patient_id`` (when
            given, unchanged), ``risk`` (calibrated probability), ``category``,
            then ``factor_k`` and ``contribution_k`` (calibrated log-odds) unless
            ``explain="none"``, and ``error``: None for a scored row, else every
            problem of the row (``field=value: reason``; its risk is NaN).

        Raises
        ------
        ValueError
            For an unknown ``explain`` or a ``top_k`` outside 1 to the number of
            fields; ValidationError for problems of the frame as a whole.

        Examples
        --------
        >>> import pandas as pd
        >>> from plo_risk import RiskModel, make_model, validate_frame
        >>> from plo_risk.synthetic import generate_cohort
        >>> train = validate_frame(generate_cohort(1_000, seed=1)).valid
        >>> model = RiskModel(make_model("clinical_rule", cv=2).fit(
        ...     train, train["fracture"]))
        >>> rows = pd.DataFrame({"age_years": [31, 29], "parity": [1, 2],
        ...                      "months_postpartum": [2, 40], "z_lumbar_spine": [-2.5, 0]})
        >>> out = model.predict_frame(rows, explain="all", top_k=1)
        >>> out.columns.tolist()
        ['risk', 'category', 'factor_1', 'contribution_1', 'error']
        >>> out.loc[0, "factor_1"], out.loc[1, "error"][:19]
        ('z_lumbar_spine', 'months_postpartum=4')
        """
        if explain not in EXPLAIN_OPTIONS:
            raise ValueError(
                f"The 'explain' parameter of predict_frame must be one of "
                f"{', '.join(EXPLAIN_OPTIONS)}. Got {explain!r} instead."
            )
        n_fields = len(self.catalog)
        if (
            isinstance(top_k, bool)
            or not isinstance(top_k, int)
            or not 1 <= top_k <= n_fields
        ):
            raise ValueError(
                "The 'top_k' parameter of predict_frame must be an int in the range "
                f"[1, {n_fields}]. Got {top_k!r} instead."
            )
        if isinstance(frame, PreparedFrame):
            prep = frame
        elif isinstance(frame, ValidatedFrame):
            prep = self.prepare(frame)
        else:
            prep = self.prepare(
                validate_frame(
                    frame, units=units, unknown="ignore", catalog=self.catalog
                )
            )
        return self._predict(prep, explain, top_k)

    def _predict(self, prep: PreparedFrame, explain: str, top_k: int) -> pd.DataFrame:
        res, X = prep.res, prep.X
        clf = self.model
        hm = self.horizon_model
        table = None
        if len(X) and hm is not None:
            # The default horizon's risk is the risk; every horizon is a column.
            table = self.horizon_risks(X, intervals=False)
            risk = table[f"risk_{self.default_horizon_label}"].to_numpy()
            category = clf.categorize(risk)
        elif len(X):
            # clf.decision_function(X), with the matrix built beforehand.
            risk = expit(clf.intercept_ + clf.slope_ * prep.finish(prep.matrix))
            category = clf.categorize(risk)
        else:
            risk = np.empty(0)
            category = np.empty(0, dtype=object)
        # Positions, not labels: an input index may repeat a label.
        keep = res.valid_mask
        n = res.n_input
        columns: dict[str, Any] = {}
        if res.ids is not None:
            columns[ID_COLUMN] = res.ids.array
        columns["risk"] = _spread(risk, keep, np.nan)
        columns["category"] = _spread(category, keep, None)
        for label in self.horizons:
            values = (
                table[f"risk_{label}"].to_numpy() if table is not None else np.empty(0)
            )
            columns[f"risk_{label}"] = _spread(values, keep, np.nan)
        if explain != "none":
            mask = np.ones(len(X), bool) if explain == "all" else category != "low"
            derived = None if res.derived is None else res.derived.loc[mask]
            top = (
                explain_cohort(
                    clf,
                    X.loc[mask],
                    top_k=top_k,
                    derived=derived,
                    catalog=self.catalog,
                    horizon=self.default_horizon,
                )
                if mask.any()
                else None
            )
            rows = np.flatnonzero(keep)[mask]
            for k in range(1, top_k + 1):
                for name, empty in (
                    (f"factor_{k}", None),
                    (f"contribution_{k}", np.nan),
                ):
                    values = np.full(n, empty, dtype=object if empty is None else float)
                    if top is not None:
                        values[rows] = top[name].to_numpy()
                    columns[name] = values
        errors = np.full(n, None, dtype=object)
        if len(res.rejects):
            by_row = pd.Series(res.rejects["message"].to_numpy()).groupby(
                res.reject_positions, sort=False
            )
            messages = by_row.agg("; ".join)
            errors[messages.index.to_numpy(dtype=np.int64)] = messages.to_numpy()
        columns["error"] = errors
        index = res.index if res.index is not None else pd.RangeIndex(n)
        return pd.DataFrame(columns, index=index)

    def predict_proba(
        self, frame: pd.DataFrame, *, units: Mapping[str, str] | None = None
    ) -> np.ndarray:
        """Calibrated risk for every row of a frame.

        Parameters
        ----------
        frame : pandas.DataFrame
            Catalog columns (any alternate units declared with ``units=``).

        Returns
        -------
        numpy.ndarray of shape (n_rows,)

        Raises
        ------
        ValidationError
            If any row is invalid (listing the first problems with their rows); use
            :meth:`predict_frame` or batch scoring to keep the valid rows.
        """
        res = validate_frame(frame, units=units, unknown="ignore", catalog=self.catalog)
        if res.n_rejected:
            first = res.rejects.head(10)
            raise ValidationError(
                [
                    Problem(f"row {r.row}: {r.field}", r.value or "missing", r.reason)
                    for r in first.itertuples()
                ]
            )
        return self.predict_frame(res)["risk"].to_numpy()

    def assess(
        self, record: Mapping[str, Any], *, units: Mapping[str, str] | None = None
    ) -> RiskAssessment:
        """Explained risk for one patient.

        Parameters
        ----------
        record : Mapping
            Field name to value (see ``features/README.md``); missing fields are
            allowed except the required ones.
        units : Mapping, default=None
            Alternate units, e.g. ``{"vitamin_d_25oh": "nmol/L"}``.

        Returns
        -------
        RiskAssessment

        Raises
        ------
        ValidationError
            Naming every bad field, before any model work.
        """
        canonical = validate_record(record, units=units, catalog=self.catalog)
        typed = {
            k for k, v in record.items() if k in self.catalog and not is_missing(v)
        }
        assessment = self._assess_canonical(canonical, typed)
        assessment._source = (dict(record), dict(units or {}))
        return assessment

    def _frame(self, canonical: Mapping[str, Any]) -> pd.DataFrame:
        row = {}
        for f in self.catalog:
            v = canonical.get(f.name)
            if f.dtype == "category":
                row[f.name] = pd.Categorical([v], categories=list(f.categories))
            elif f.dtype == "bool":
                row[f.name] = [np.nan if v is None else float(v)]
            else:
                row[f.name] = [np.nan if v is None else float(v)]
        return pd.DataFrame(row)

    def _explainer(self):
        """The model's explainer, prepared once (again if ``model`` is replaced)."""
        cached = self.__dict__.get("_explainer_cache")
        if (
            cached is None
            or cached.model is not self.model
            or cached.estimator is not getattr(self.model, "estimator_", None)
        ):
            cached = explainer_for(self.model)
            self._explainer_cache = cached
        return cached

    def _explain_row(
        self, canonical: Mapping[str, Any]
    ) -> tuple[np.ndarray, float, list[str]]:
        """Field contributions (in catalog order of the model's fields) and base."""
        explainer = self._explainer()
        if explainer.arrays is not None:
            # One record straight to numpy: no one-row DataFrame on the way.
            values, base, fields = explainer.explain(canonical, "field")
        else:
            expl = contributions(self.model, self._frame(canonical), by="field")
            values, base = expl.values.to_numpy(), expl.base
            fields = list(expl.values.columns)
        return values[0], float(base[0]), fields

    def _assess_canonical(
        self, canonical: dict[str, Any], typed: set[str] | None = None
    ) -> RiskAssessment:
        """The assessment of a validated record; ``typed`` names the fields the
        clinician gave (None: every value present), the others with a value were
        derived and fold into the one they came from."""
        risks: dict[str, float] = {}
        intervals: dict[str, tuple[float, float]] = {}
        if self.horizon_model is not None:
            row, base, fields, risks, intervals = self._horizon_assessment(canonical)
            risk = risks[self.default_horizon_label]
            horizon = _horizon_outcome(self.default_horizon)
        else:
            row, base, fields = self._explain_row(canonical)
            risk = float(expit(float(base + row.sum())))
            horizon = self.horizon
        category = str(self.model.categorize([risk])[0])
        factors = self._factors(canonical, row, fields, typed)
        return RiskAssessment(
            self,
            dict(canonical),
            risk,
            category,
            base,
            factors,
            horizon=horizon,
            setting=self.setting,
            average_risk=self._baseline_at(self.default_horizon)
            if self.horizon_model is not None
            else self.average_risk,
            risks=risks,
            intervals=intervals,
        )

    def _factors(
        self,
        canonical: Mapping[str, Any],
        row: np.ndarray,
        fields: list[str],
        typed: set[str] | None,
    ) -> list[Factor]:
        """One factor per value given (derived ones folded in) and one for every
        input not known, sorted by the size of their contribution."""
        present = {f for f in fields if canonical.get(f) is not None}
        derived_fields = set() if typed is None else present - set(typed)
        frame = pd.DataFrame(
            [[np.nan if canonical.get(f) is None else 0.0 for f in fields]],
            columns=fields,
        )
        derived = pd.DataFrame([[f in derived_fields for f in fields]], columns=fields)
        folded = fold_contributions(
            pd.DataFrame([row], columns=fields),
            frame,
            catalog=self.catalog,
            derived=derived,
        ).iloc[0]
        factors = []
        for f in self.catalog:
            if f.name not in present or f.name in derived_fields:
                continue
            folded_in = tuple(
                d for d in _site_fields(self.catalog, f.name) if d in derived_fields
            )
            factors.append(
                Factor(
                    f.name,
                    f.label,
                    canonical.get(f.name),
                    f.unit,
                    float(folded[f.name]),
                    True,
                    fields=(f.name, *folded_in),
                )
            )
        missing = tuple(f for f in fields if f not in present)
        if missing:
            factors.append(not_known_factor(missing, float(folded[NOT_KNOWN])))
        factors.sort(key=lambda fa: -abs(fa.contribution))
        return factors

    def _waterfall(self, assessment: RiskAssessment, *, max_display: int = 10):
        """The waterfall plot of an assessment (see RiskAssessment.plot_waterfall)."""
        folded = {d for f in assessment.factors if f.given for d in f.fields[1:]}
        frame = self._frame(assessment.record)
        derived = pd.DataFrame(
            [[c in folded for c in frame.columns]], columns=frame.columns
        )
        return plot_waterfall(
            self.model,
            frame,
            max_display=max_display,
            catalog=self.catalog,
            derived=derived,
        )

    # ------------------------------------------------------- helpers used lazily
    def _interval(self, canonical: Mapping[str, Any]) -> tuple[float, float] | None:
        if self.horizon_model is not None:
            return self._interval_at_record(canonical)
        if not getattr(self.model, "ensemble_", None):
            return None
        risks = ensemble_risks(self.model, self._frame(canonical))[:, 0]
        tail = (1 - INTERVAL_LEVEL) / 2
        lo, hi = np.quantile(risks, [tail, 1 - tail])
        return float(lo), float(hi)

    def _interval_at_record(
        self, canonical: Mapping[str, Any], months=None, changes=None
    ):
        """The 90% interval of a record's risk at ``months`` (default: the default
        horizon), under ``changes`` from now on; None without intervals."""
        h = self.default_horizon if months is None else parse_horizon(months)
        label = horizon_label(h)
        table = self.horizon_risks(
            self._frame(canonical), [h], changes=changes, intervals=True
        )
        if f"risk_{label}_low" not in table.columns:
            return None
        return (
            float(table[f"risk_{label}_low"].iloc[0]),
            float(table[f"risk_{label}_high"].iloc[0]),
        )

    def _missing(self, canonical: Mapping[str, Any]) -> list[MissingInput]:
        groups = self._missing_groups(canonical)
        if not groups:
            return []
        rows, owners = [], []
        for name, (_, _, candidates) in groups.items():
            for cand in candidates:
                rows.append({**canonical, **cand})
                owners.append(name)
        frame = pd.DataFrame(rows)
        cols = [f.name for f in self.catalog]
        res = validate_frame(frame[cols], catalog=self.catalog)
        risks = pd.Series(np.nan, index=frame.index)
        if len(res.valid):
            X = _inputs(res.valid)
            if self.horizon_model is not None:
                risks.loc[res.valid.index] = self.horizon_model.risk(
                    X, [self.default_horizon]
                ).to_numpy()[:, 0]
            else:
                risks.loc[res.valid.index] = self.model.predict_proba(X)[:, 1]
        out = []
        owners_s = pd.Series(owners)
        for name, (fields, label, _) in groups.items():
            r = risks[owners_s == name].dropna()
            if len(r):
                out.append(
                    MissingInput(
                        name, tuple(fields), label, float(r.min()), float(r.max())
                    )
                )
        out.sort(key=lambda m: -m.spread)
        return out

    def _missing_groups(self, canonical: Mapping[str, Any]) -> dict:
        ref = self.reference
        groups: dict[str, tuple[list[str], str, list[dict]]] = {}
        for site in self.catalog.bmd_sites:
            fields = [site.name] + [s.name for s in self.catalog.scores_of(site.name)]
            if all(canonical.get(f) is None for f in fields) and site.name in ref:
                key = site.name.removeprefix("bmd_")
                cands = [
                    {site.name: float(v), **{s: None for s in fields[1:]}}
                    for v in ref[site.name]
                ]
                groups[f"dxa_{key}"] = (
                    fields,
                    _SITE_LABELS.get(key, site.label),
                    cands,
                )
        for f in self.catalog:
            if f.group == "bmd" or canonical.get(f.name) is not None or not f.missing:
                continue
            if f.name not in ref:
                continue
            values = ref[f.name]
            if f.dtype == "bool":
                cands = [{f.name: True}, {f.name: False}]
            elif f.dtype == "category":
                cands = [{f.name: v} for v in values]
            else:
                cands = [{f.name: float(v)} for v in values]
            groups[f.name] = ([f.name], f.label, cands)
        return groups

    def __repr__(self) -> str:
        name = self.info.model_name if self.info else type(self.model).__name__
        return f"RiskModel({name}, version={self.version})"


@dataclass(frozen=True, eq=False)
class PreparedFrame:
    """A validated frame with its model matrix built (see :meth:`RiskModel.prepare`).

    Attributes
    ----------
    res : ValidatedFrame
        The validation result: valid rows and rejects.
    X : pandas.DataFrame
        The valid rows' model inputs (catalog fields only).
    matrix, finish
        The model matrix and the function that turns it into the margin
        (:func:`plo_risk.model.calibration.split_margin`).
    """

    res: ValidatedFrame
    X: pd.DataFrame
    matrix: Any = None
    finish: Any = None


def _horizon_outcome(h: float | str) -> str:
    """What a horizon risk is the probability of."""
    if h == END:
        return (
            "a first fragility fracture after the assessment and before 18 months "
            "postpartum"
        )
    return (
        f"a first fragility fracture within {float(h):g} months after the "
        "assessment (and before 18 months postpartum)"
    )


def _spread(values: np.ndarray, keep: np.ndarray, empty: Any) -> np.ndarray:
    """``values`` of the kept rows at their input positions, ``empty`` elsewhere."""
    out = np.full(len(keep), empty, dtype=object if empty is None else np.float64)
    out[keep] = values
    return out


def _site_fields(catalog: Catalog, name: str) -> list[str]:
    """The BMD field and its scores of the site ``name`` belongs to (or [])."""
    feat = catalog[name]
    site = feat.derived_from or (name if feat.bmd_reference is not None else None)
    if site is None:
        return []
    return [site, *(f.name for f in catalog.scores_of(site))]


def _inputs(valid: pd.DataFrame) -> pd.DataFrame:
    drop = [c for c in _NOT_INPUTS if c in valid.columns]
    return valid.drop(columns=drop) if drop else valid
