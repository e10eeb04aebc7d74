"""The model registry: every heatmap model the engine can compute, by name.

A model is a vectorised precomputation of the per-step inputs of the shared
level recurrence (:mod:`engine.kernels`) plus its metadata. Adding a model
means one module with a ``prepare`` function and a markdown page beside it,
and one entry in :data:`MODELS`.
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
from engine.models import model1
from engine.series import MarketSeries

Prepare = Callable[[MarketSeries, PriceGrid], StepInputs]


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
        Lowest and highest liquidation price as multiples of an entry price;
        the price grid is widened by these so every level fits.
    prepare : callable
        ``prepare(series, grid) -> StepInputs`` with the parameters bound.
    """

    name: str
    version: str
    params: dict[str, Any]
    params_hash: str
    description: str
    doc: str
    reach: tuple[float, float]
    prepare: Prepare = field(repr=False, compare=False)


def params_hash(params: dict[str, Any]) -> str:
    """SHA-256 hex digest of the canonical JSON (sorted keys, no spaces) of ``params``."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _doc(filename: str) -> str:
    return resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")


def model1_spec(params: model1.Model1Params) -> ModelSpec:
    """model1 with the given parameters (the registry holds the defaults)."""
    as_json = params.to_json()
    return ModelSpec(
        name=model1.NAME,
        version=model1.VERSION,
        params=as_json,
        params_hash=params_hash(as_json),
        description=model1.DESCRIPTION,
        doc=_doc("model1.md"),
        reach=params.reach(),
        prepare=partial(model1.prepare, params=params),
    )


class UnknownModelError(KeyError, ValueError):
    """No model of the given name; both a ``KeyError`` and a ``ValueError``."""

    def __str__(self) -> str:
        # KeyError would quote the message as a key's repr.
        return str(self.args[0])


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (model1_spec(model1.Model1Params()),)}


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
