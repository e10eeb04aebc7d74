"""The model registry: every heatmap model the engine can compute, by name.

A model is a vectorised precomputation of the per-step inputs of the shared
level recurrence (:mod:`engine.kernels`) plus its metadata. Adding a model
means one module with a ``prepare`` function and a markdown page beside it,
and one entry in :data:`MODELS`.

Backtest scores live in ``scores.json`` beside this file (written by
``liqmap calibrate``); a score is attached to a model only while its version
and parameter hash are the ones it was measured for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from typing import Any

from engine.grid import PriceGrid
from engine.kernels import StepInputs
from engine.models import model1, model2, model3, model4
from engine.models.margin import MarginTable
from engine.series import MarketSeries

Prepare = Callable[..., StepInputs]
SCORES_FILE = "scores.json"


@dataclass(frozen=True)
class ModelSpec:
    """One version of one heatmap model.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"model1"``.
    version : str
        Semantic version; bumped whenever the same inputs may give other output.
    params : dict
        Parameters as JSON-able data.
    params_hash : str
        SHA-256 hex digest of the canonical JSON of ``params``.
    description : str
        One paragraph for listings.
    doc : str
        Markdown: assumptions, parameters, known weaknesses.
    reach : (float, float)
        Lowest and highest liquidation price as multiples of an entry price.
    tiers : tuple of float
        Leverage of each tier, in the order of the model's tier index.
    created : str or None
        ISO date this version was made.
    score : dict or None
        Backtest against realized liquidations for this version and hash
        (see ``liqmap backtest``), or None where not measured.
    calibration : dict or None
        What the fitted parameters were fitted on (model3, model4), else None.
    prepare : callable
        ``prepare(series, grid) -> StepInputs`` with the parameters bound;
        models that place levels by the market's margin tiers take
        ``margin_table=`` too.
    margin_reach : callable or None
        For models that use the market's margin table: its reach under a
        given table. None for models whose tiers are part of their parameters.
    """

    name: str
    version: str
    params: dict[str, Any]
    params_hash: str
    description: str
    doc: str
    reach: tuple[float, float]
    tiers: tuple[float, ...]
    prepare: Prepare = field(repr=False, compare=False)
    created: str | None = None
    score: dict[str, Any] | None = field(default=None, compare=False)
    calibration: dict[str, Any] | None = field(default=None, compare=False)
    margin_reach: Callable[[MarginTable], tuple[float, float]] | None = field(default=None, repr=False, compare=False)

    @property
    def takes_margin_table(self) -> bool:
        """Whether the model places levels by the market's margin table (which frames then record)."""
        return self.margin_reach is not None

    def inputs(self, series: MarketSeries, grid: PriceGrid, margin_table: MarginTable | None = None) -> StepInputs:
        """Per-step inputs; ``margin_table`` is the market's (ignored by models whose tiers are parameters)."""
        if margin_table is not None and self.takes_margin_table:
            return self.prepare(series, grid, margin_table=margin_table)
        return self.prepare(series, grid)

    def reach_under(self, margin_table: MarginTable | None = None) -> tuple[float, float]:
        """:attr:`reach`, under the market's margin table for models that use one."""
        if margin_table is not None and self.margin_reach is not None:
            return self.margin_reach(margin_table)
        return self.reach

    def metadata(self) -> dict[str, Any]:
        """Everything but ``prepare``, JSON-able (what ``/v1/models`` serves)."""
        return {
            "name": self.name,
            "version": self.version,
            "params_hash": self.params_hash,
            "params": self.params,
            "description": self.description,
            "doc": self.doc,
            "tiers": list(self.tiers),
            "created": self.created,
            "score": self.score,
            "calibration": self.calibration,
            "margin_table": "the market's" if self.takes_margin_table else "part of the parameters",
        }


def params_hash(params: dict[str, Any]) -> str:
    """SHA-256 hex digest of the canonical JSON (sorted keys, no spaces) of ``params``."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _text(filename: str) -> str:
    return resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")


def _stored_scores() -> dict[str, Any]:
    try:
        scores: dict[str, Any] = json.loads(_text(SCORES_FILE))
    except FileNotFoundError:
        return {}
    return scores


_SCORES = _stored_scores()


def _score_for(name: str, version: str, hash_: str) -> dict[str, Any] | None:
    entry = _SCORES.get(name)
    if entry and entry.get("version") == version and entry.get("params_hash") == hash_:
        score: dict[str, Any] = entry["score"]
        return score
    return None


def _spec(module: Any, params: Any, *, created: str | None, calibration: dict[str, Any] | None = None, market_margin: bool = False) -> ModelSpec:
    as_json = params.to_json()
    hash_ = params_hash(as_json)
    return ModelSpec(
        name=module.NAME,
        version=module.VERSION,
        params=as_json,
        params_hash=hash_,
        description=module.DESCRIPTION,
        doc=_text(f"{module.NAME}.md"),
        reach=params.reach(),
        tiers=tuple(float(leverage) for leverage in params.leverages),
        prepare=partial(module.prepare, params=params),
        created=created,
        score=_score_for(module.NAME, module.VERSION, hash_),
        calibration=calibration,
        margin_reach=params.reach if market_margin else None,
    )


def model1_spec(params: model1.Model1Params) -> ModelSpec:
    """model1 with the given parameters (the registry holds the defaults)."""
    return _spec(model1, params, created=model1.CREATED)


def model2_spec(params: model2.Model2Params) -> ModelSpec:
    """model2 with the given parameters (the registry holds the defaults)."""
    return _spec(model2, params, created=model2.CREATED)


def model3_spec(params: model3.Model3Params) -> ModelSpec:
    """model3 with the given parameters (the registry holds the fitted ones)."""
    return _spec(model3, params, created=model3.CREATED, calibration=model3.FIT.get("calibration"))


def model4_spec(params: model4.Model4Params) -> ModelSpec:
    """model4 with the given parameters (the registry holds the fitted ones)."""
    return _spec(model4, params, created=model4.CREATED, calibration=model4.FIT.get("calibration"), market_margin=True)


class UnknownModelError(KeyError, ValueError):
    """No model of the given name; both a ``KeyError`` and a ``ValueError``."""

    def __str__(self) -> str:
        # KeyError would quote the message as a key's repr.
        return str(self.args[0])


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        model1_spec(model1.Model1Params()),
        model2_spec(model2.Model2Params()),
        model3_spec(model3.Model3Params()),
        model4_spec(model4.Model4Params()),
    )
}


def get_model(name: str) -> ModelSpec:
    """The registered model called ``name``.

    Raises
    ------
    UnknownModelError
        (a ``KeyError`` and a ``ValueError``) if no model has that name; the
        message lists the names there are.
    """
    try:
        return MODELS[name]
    except KeyError:
        allowed = ", ".join(sorted(MODELS))
        raise UnknownModelError(f"unknown model {name!r}; allowed: {allowed}") from None


# Every version this build can compute, current or kept so that frames built by it can be
# built again: (name, params hash) -> spec. An older version stays here when a newer one
# becomes the registry's default.
VERSIONS: dict[tuple[str, str], ModelSpec] = {(spec.name, spec.params_hash): spec for spec in MODELS.values()}


def find_version(name: str, params_hash: str) -> ModelSpec | None:
    """The version of model ``name`` with parameters ``params_hash`` (the current one or a kept one), or None."""
    current = MODELS.get(name)
    if current is not None and current.params_hash == params_hash:
        return current
    return VERSIONS.get((name, params_hash))
