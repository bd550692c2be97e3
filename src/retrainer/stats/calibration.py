"""Calibration maps: a binary classifier's raw scores -> probabilities that mean what they say.

Label-free performance estimation (:mod:`retrainer.stats.estimation`) needs P(positive | score).
:func:`fit_calibration` fits two candidates with scikit-learn on a labelled holdout and keeps the
one with the lower *out-of-fold* log-loss (stratified k-fold cross-fitting, so neither map is
judged on the rows it was fitted to; isotonic would otherwise always win by overfitting), then
refits the winner on the whole holdout:

* ``platt``: ``sigmoid(a * x + b)``, with ``x`` the score's logit when every score is a
  probability in [0, 1] (a model's ``predict_proba``), else the raw score (a decision function);
* ``isotonic``: a monotone step-linear map, kept as its breakpoints (sklearn's
  ``IsotonicRegression`` with ``out_of_bounds="clip"``, applied with the same interpolation).

A map is plain JSON (``to_dict`` / ``from_dict``: numbers and lists, never a pickle), so it
travels inside a model's reference profile.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> s = rng.random(4000)
>>> y = (rng.random(4000) < s**2).astype(int)   # the scores are over-confident: truth is s^2
>>> cal = fit_calibration(s, y)
>>> cal.method in ("isotonic", "platt"), abs(float(cal.apply(np.array([0.5]))[0]) - 0.25) < 0.05
(True, True)
>>> CalibrationMap.from_dict(cal.to_dict()) == cal
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from retrainer.errors import StatisticsError

CalibrationMethod = Literal["isotonic", "platt"]
_EPS = 1e-6  # probabilities are clipped to [eps, 1 - eps] for logits and log-loss (isotonic reaches 0 and 1)
MAP_VERSION = 1


def _logit(s: np.ndarray) -> np.ndarray:
    c = np.clip(s, _EPS, 1.0 - _EPS)
    return np.log(c) - np.log1p(-c)


@dataclass(frozen=True)
class CalibrationMap:
    """A fitted score -> probability map (see the module docstring); ``apply`` it to new scores.

    ``log_loss`` holds each candidate's out-of-fold log-loss on the holdout (why this one won).
    """

    method: CalibrationMethod
    a: float = 1.0
    b: float = 0.0
    logit_input: bool = False
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    n: int = 0
    log_loss: Mapping[str, float] = field(default_factory=dict, compare=False)

    def apply(self, scores: ArrayLike) -> np.ndarray:
        """Calibrated P(positive) per score (NaN stays NaN)."""
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "platt":
            z = self.a * (_logit(s) if self.logit_input else s) + self.b
            return 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function without exp overflow
        out = np.interp(s, np.asarray(self.x), np.asarray(self.y))
        return np.where(np.isnan(s), np.nan, out)

    def to_dict(self) -> dict[str, Any]:
        base: dict[str, Any] = {"version": MAP_VERSION, "method": self.method, "n": self.n,
                                "log_loss": dict(self.log_loss)}
        if self.method == "platt":
            return base | {"a": self.a, "b": self.b, "input": "logit" if self.logit_input else "raw"}
        return base | {"x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibrationMap:
        """The map ``to_dict`` wrote; a StatisticsError saying what is wrong otherwise."""
        if not isinstance(data, Mapping) or data.get("version") != MAP_VERSION:
            raise StatisticsError(
                f"not a version-{MAP_VERSION} calibration map ({type(data).__name__}); "
                "refit it with retrainer.stats.calibration.fit_calibration"
            )
        method = data.get("method")
        losses = {str(k): float(v) for k, v in (data.get("log_loss") or {}).items()}
        try:
            if method == "platt":
                return cls("platt", a=float(data["a"]), b=float(data["b"]), logit_input=data.get("input") == "logit",
                           n=int(data.get("n", 0)), log_loss=losses)
            if method == "isotonic":
                x, y = tuple(float(v) for v in data["x"]), tuple(float(v) for v in data["y"])
                if not x or len(x) != len(y):
                    raise StatisticsError("an isotonic calibration map needs equally long, non-empty x and y")
                return cls("isotonic", x=x, y=y, n=int(data.get("n", 0)), log_loss=losses)
        except (KeyError, TypeError, ValueError) as exc:
            raise StatisticsError(f"calibration map is malformed ({exc}); refit it with fit_calibration") from None
        raise StatisticsError(f"calibration method must be 'isotonic' or 'platt', got {method!r}")


def _fit_platt(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e6, max_iter=1000).fit(x.reshape(-1, 1), y)  # ~unpenalised Platt scaling
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _fit_isotonic(s: np.ndarray, y: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)
    return tuple(map(float, iso.X_thresholds_)), tuple(map(float, iso.y_thresholds_))


def _fit(method: CalibrationMethod, s: np.ndarray, y: np.ndarray, logit_input: bool) -> CalibrationMap:
    if method == "platt":
        a, b = _fit_platt(_logit(s) if logit_input else s, y)
        return CalibrationMap("platt", a=a, b=b, logit_input=logit_input, n=int(s.size))
    xs, ys = _fit_isotonic(s, y)
    return CalibrationMap("isotonic", x=xs, y=ys, n=int(s.size))


def fit_calibration(scores: ArrayLike, y: ArrayLike, *, folds: int = 5, seed: int = 0) -> CalibrationMap:
    """Isotonic or Platt, whichever has the lower out-of-fold log-loss on ``(scores, y)``.

    ``y`` is 1/True for the positive class. Needs at least ``folds`` rows of each class (a
    StatisticsError says so otherwise); rows with a non-finite score are left out.
    """
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold

    s = np.asarray(scores, dtype=np.float64).ravel()
    t = np.asarray(y).ravel()
    if s.size != t.size:
        raise StatisticsError(f"scores ({s.size}) and labels ({t.size}) must be aligned row by row")
    keep = np.isfinite(s)
    s, t = s[keep], t[keep].astype(float)
    if np.any((t != 0.0) & (t != 1.0)):
        raise StatisticsError("calibration labels must be binary: 1 (positive) or 0")
    n_pos = int(t.sum())
    if min(n_pos, t.size - n_pos) < folds:
        raise StatisticsError(
            f"cannot calibrate on {n_pos} positive and {t.size - n_pos} negative scored rows: "
            f"at least {folds} of each are needed (a larger holdout)"
        )
    logit_input = bool(np.all((s >= 0.0) & (s <= 1.0)))
    oof = {m: np.empty_like(s) for m in ("isotonic", "platt")}
    for fit_rows, test_rows in StratifiedKFold(folds, shuffle=True, random_state=seed).split(s, t):
        for method, out in oof.items():
            out[test_rows] = _fit(method, s[fit_rows], t[fit_rows], logit_input).apply(s[test_rows])  # type: ignore[arg-type]
    losses = {m: float(log_loss(t, np.clip(p, _EPS, 1.0 - _EPS), labels=[0.0, 1.0])) for m, p in oof.items()}
    best: CalibrationMethod = "isotonic" if losses["isotonic"] < losses["platt"] else "platt"
    fitted = _fit(best, s, t, logit_input)
    return CalibrationMap(fitted.method, a=fitted.a, b=fitted.b, logit_input=fitted.logit_input, x=fitted.x,
                          y=fitted.y, n=fitted.n, log_loss=losses)


__all__ = ["CalibrationMap", "CalibrationMethod", "fit_calibration"]
