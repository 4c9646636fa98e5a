"""Prediction profiles: *photo* (an ensemble with test-time augmentation) and *live* (one pass per model).

Both correct the FER2013 class prior (:mod:`fer.prior`). The shipped profiles are defined in
``models/profiles.json``::

    {"format": 1,
     "profiles": {"photo": {"members": ["fer_default.keras", ...], "weights": [0.75, ...], "tta": "flip",
                            "tau": 0.5, ...},
                  "live":  {"members": ["fer_default.keras", "fer_effnet.keras"], "weights": [0.6, 0.4],
                            "tta": null, "tau": 0.5, ...}}}

Each member is a model file beside the manifest, with its card, and an optional weight in the
average (equal when absent); the prior comes from the members'
cards (the training split's class frequencies), ``tau`` from the profile (chosen for the ensemble's
output on public_test by ``scripts/build_profiles.py``). A model of your own runs under a profile's
recipe alone: ``photo`` = the model with flip TTA, ``live`` = one pass, both with the ``prior`` and
``tau`` of its own card (none when the card has no prior).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fer.evaluate import TTA_MODES, tta_views
from fer.labels import NUM_CLASSES
from fer.prior import adjust, check_prior

PROFILES = {
    "photo": "the most accurate: the shipped ensemble, each model with flip TTA, prior-corrected",
    "live": "the fastest: one pass per model, prior-corrected (the webcam)",
}
DEFAULT_PROFILE = "photo"
RECIPE_TTA = {"photo": "flip", "live": None}
"""The TTA a profile applies to a single model of the user's own."""
MANIFEST_FORMAT = 1


def check_profile(name: str) -> str:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    return name


def manifest_path() -> Path:
    from fer.modelfile import MODELS_DIR

    return MODELS_DIR / "profiles.json"


def check_recipe(members: int, cards: list, tta: str | None, prior, tau: float,
                 weights) -> tuple[np.ndarray | None, list[float]]:
    """Check an ensemble of ``members`` models: a card each, its TTA mode, correction and weights
    (``ValueError`` with the fix); the prior as an array and the weights summing to 1."""
    if not members or members != len(cards):
        raise ValueError("an ensemble needs at least one model, each with its card")
    if tta is not None and tta not in TTA_MODES:
        raise ValueError(f"tta={tta!r} is not a test-time augmentation; use None or one of: {', '.join(TTA_MODES)}")
    if not 0.0 <= float(tau) <= 3.0:
        raise ValueError(f"tau={tau} is outside [0, 3]; 0 turns the prior correction off")
    return (None if prior is None else check_prior(prior)), check_weights(weights, members)


def mix(x: np.ndarray, tta: str | None, weights: list[float], predictors: list) -> np.ndarray:
    """Probabilities (n, 7) for faces ``x`` (n, 48, 48): each predictor (views -> probabilities) averaged
    over the TTA views, then the predictors' weighted mean. Both engines' ensembles use it."""
    views = np.concatenate(tta_views(x, tta)) if tta else x
    out = np.zeros((len(x), NUM_CLASSES), np.float64)
    for w, predict in zip(weights, predictors):
        out += w * np.asarray(predict(views)).reshape(-1, len(x), NUM_CLASSES).mean(axis=0)
    return out.astype(np.float32)


def check_weights(weights, members: int) -> list[float]:
    """The members' weights in the average, summing to 1 (None: equal); ``ValueError`` with the fix."""
    if weights is None:
        return [1.0 / members] * members
    w = [float(v) for v in weights]
    if len(w) != members or min(w) <= 0:
        raise ValueError(f"weights {list(weights)} must be {members} positive numbers, one per model")
    return [v / sum(w) for v in w]


def passes(members: int, tta: str | None) -> int:
    """Model passes per face of ``members`` models under ``tta``."""
    return members * (1 if not tta else len(tta_views(np.zeros((1, 48, 48), np.uint8), tta)))


@dataclass
class Ensemble:
    """Models whose (TTA-averaged) probabilities are averaged, then prior-corrected.

    ``models`` are Keras models (raw 48x48 gray in, 7 probabilities out), ``cards`` their cards,
    ``tta`` a mode of :data:`fer.evaluate.TTA_MODES` or None, ``prior``/``tau`` the correction.
    """

    models: list
    cards: list
    tta: str | None = None
    prior: np.ndarray | None = None
    tau: float = 0.0
    name: str = "custom"
    info: dict = field(default_factory=dict)
    weights: list[float] | None = None

    def __post_init__(self) -> None:
        self.prior, self.weights = check_recipe(len(self.models), self.cards, self.tta, self.prior, self.tau,
                                                self.weights)
        from fer.predictor import compiled_predictor

        self._predictors = [_on_float_images(compiled_predictor(m)) for m in self.models]

    @property
    def passes(self) -> int:
        """Model passes per face: members x TTA views."""
        return passes(len(self.models), self.tta)

    def probabilities(self, crops: np.ndarray, corrected: bool = True, batch_size: int = 512) -> np.ndarray:
        """Probabilities (n, 7) for uint8 faces (n, 48, 48); the prior correction unless ``corrected=False``."""
        x = np.asarray(crops)
        if len(x) == 0:
            return np.zeros((0, NUM_CLASSES), np.float32)
        parts = [mix(x[i : i + batch_size], self.tta, self.weights, self._predictors)
                 for i in range(0, len(x), batch_size)]
        probs = np.concatenate(parts)
        return adjust(probs, self.prior, self.tau) if corrected else probs


def _on_float_images(predict):
    """A compiled Keras predictor taking (n, 48, 48) faces: the (n, 48, 48, 1) float32 it needs."""
    return lambda views: predict(views[..., None].astype(np.float32))


def card_prior(cards: list) -> np.ndarray | None:
    """The members' shared training prior (None if a card has none); ``ValueError`` if they disagree."""
    priors = [getattr(c, "prior", None) for c in cards]
    if any(not p for p in priors):
        return None
    first = check_prior(priors[0])
    for p in priors[1:]:
        if not np.allclose(check_prior(p), first, atol=1e-4):
            raise ValueError("the ensemble's models were trained on different class priors; "
                             "their cards' 'prior' fields must agree")
    return first


def read_manifest(path: str | Path | None = None) -> dict:
    """``models/profiles.json`` as a dict, checked: every profile known, members listed, tta valid."""
    from fer.modelfile import read_json

    path = Path(path) if path is not None else manifest_path()
    doc = read_json(path, "profile manifest", "it lists the models of the photo and live profiles")
    profiles = doc.get("profiles") if isinstance(doc, dict) else None
    if not isinstance(profiles, dict) or set(profiles) != set(PROFILES):
        raise ValueError(f"profile manifest {path} must define exactly the profiles {', '.join(PROFILES)}")
    for name, spec in profiles.items():
        members = spec.get("members") if isinstance(spec, dict) else None
        if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
            raise ValueError(f"profile {name!r} in {path} needs a non-empty 'members' list of model files")
        if spec.get("weights") is not None:
            try:
                check_weights(spec["weights"], len(members))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"profile {name!r} in {path}: {exc}") from None
        if spec.get("tta") is not None and spec["tta"] not in TTA_MODES:
            raise ValueError(f"profile {name!r} in {path} has tta={spec['tta']!r}; use null or one of "
                             f"{', '.join(TTA_MODES)}")
    return doc


def load_profile(name: str = DEFAULT_PROFILE, model: Any = None, manifest: str | Path | None = None) -> Ensemble:
    """The :class:`Ensemble` of profile ``name``: the shipped one (``model=None``), or ``model`` (a path,
    ``(keras.Model, ModelCard)`` or a keras.Model) under the profile's recipe with its own card's correction."""
    from fer.modelfile import load_model

    check_profile(name)
    if model is not None:
        model, card = as_model_and_card(model)
        return Ensemble([model], [card], RECIPE_TTA[name], card_prior([card]), float(getattr(card, "tau", 0.0)), name)
    files, spec = member_files(name, manifest)
    loaded = [load_model(f) for f in files]
    models, cards = [m for m, _ in loaded], [c for _, c in loaded]
    return Ensemble(models, cards, spec.get("tta"), card_prior(cards), float(spec.get("tau", 0.0)), name,
                    info=profile_info(spec), weights=spec.get("weights"))


def member_files(name: str, manifest: str | Path | None = None) -> tuple[list[Path], dict]:
    """The shipped profile ``name``'s member model files, and its manifest entry (nothing loaded)."""
    path = Path(manifest) if manifest is not None else manifest_path()
    spec = read_manifest(path)["profiles"][check_profile(name)]
    return [path.parent / m for m in spec["members"]], spec


def profile_info(spec: dict) -> dict:
    """A manifest entry's description and measured figures (all but the recipe)."""
    return {k: v for k, v in spec.items() if k not in ("members", "tta", "tau", "weights")}


def as_model_and_card(model: Any):
    """``(keras.Model, ModelCard)`` from a path, such a pair, or a bare keras.Model."""
    from fer.modelfile import ModelCard, load_model

    if isinstance(model, (str, Path)):
        return load_model(model)
    if isinstance(model, tuple) and len(model) == 2:
        return model
    if hasattr(model, "input_shape") and callable(model):
        return model, ModelCard(architecture=getattr(model, "name", "unknown"))
    raise ValueError(f"model must be None, a .keras path or (keras.Model, ModelCard); got {type(model).__name__}")


def evaluate_ensemble(ensemble: Ensemble, split) -> dict:
    """:func:`fer.evaluate.metrics_from_probs` of ``ensemble`` on a split, prior-corrected, plus the same
    figures without the correction under ``uncorrected``, and the recipe (profile, tta, tau, passes)."""
    from fer.evaluate import metrics_from_probs

    if len(split) == 0:
        raise ValueError("cannot evaluate on an empty split")
    raw = ensemble.probabilities(split.x, corrected=False)
    out = metrics_from_probs(adjust(raw, ensemble.prior, ensemble.tau), split.y)
    plain = metrics_from_probs(raw, split.y)
    out["uncorrected"] = {k: plain[k] for k in ("accuracy", "balanced_accuracy", "loss", "per_class")}
    out.update(profile=ensemble.name, tta=ensemble.tta, tau=ensemble.tau, passes=ensemble.passes,
               weights=[round(w, 4) for w in ensemble.weights],
               members=[c.architecture for c in ensemble.cards], prior_corrected=ensemble.prior is not None)
    return out
