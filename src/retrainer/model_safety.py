"""Which registered models retrainer will load, decided before a byte of the model is deserialized.

MLflow follows whatever an artifact's ``MLmodel`` declares: a pickle flavor runs its payload on
load, a ``loader_module`` or ``code`` entry imports the artifact's own Python, and even the skops
flavor trusts the type list stored *in the artifact*. retrainer loads a version only from a
local copy that passed these checks:

* ``MLmodel`` (parsed with ``yaml.safe_load``) declares the scikit-learn flavor serialized as
  ``skops``, a ``python_function`` flavor served by ``mlflow.sklearn``, and no bundled code;
* every type the skops file references is on retrainer's allow-list — scikit-learn, numpy, scipy
  and Python builtins, the configured estimator's own package, and ``estimator.trusted_types``
  from retrainer.yaml — never the artifact's list.

Anything else is an :class:`~retrainer.errors.UnsafeModelError` naming what was found.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from retrainer.errors import UnsafeModelError

# Types every scikit-learn model may reference.
BASE_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")
_SAFE_LOADER = "mlflow.sklearn"


@dataclass(frozen=True)
class TrustPolicy:
    """The allow-list: module prefixes (``"sklearn."``) and exact type names (``"mypkg.MyScaler"``)."""

    prefixes: tuple[str, ...] = BASE_TRUSTED_PREFIXES
    types: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def for_estimator(cls, class_path: str | None = None, extra_types: Iterable[str] = ()) -> TrustPolicy:
        """Defaults derived from the configured estimator: its top-level package is trusted too."""
        prefixes = list(BASE_TRUSTED_PREFIXES)
        if class_path:
            package = class_path.split(".", 1)[0] + "."
            if package not in prefixes:
                prefixes.append(package)
        return cls(tuple(prefixes), frozenset(extra_types))

    def untrusted(self, type_names: Iterable[str]) -> list[str]:
        return sorted(t for t in type_names if not t.startswith(self.prefixes) and t not in self.types)


def check_mlmodel(model_dir: Path, what: str) -> Path:
    """The skops file of a downloaded MLflow model, once its ``MLmodel`` is one we load safely."""
    meta_path = model_dir / "MLmodel"
    try:
        meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UnsafeModelError(f"{what} has no readable MLmodel file ({exc}); re-register it with retrainer") from None
    flavors = meta.get("flavors") if isinstance(meta, dict) else None
    if not isinstance(flavors, dict) or "sklearn" not in flavors:
        kinds = ", ".join(sorted(flavors)) if isinstance(flavors, dict) else "none"
        raise UnsafeModelError(f"{what} is not a scikit-learn model saved by retrainer (flavors: {kinds}); refused unread")
    sk = flavors["sklearn"] or {}
    fmt = sk.get("serialization_format")
    if fmt != "skops":
        raise UnsafeModelError(
            f"{what} is saved as {fmt!r}, not skops: loading it could run code from the registry; refused unread "
            "(re-register it with retrainer, which saves skops)"
        )
    pyfunc = flavors.get("python_function") or {}
    loader = pyfunc.get("loader_module")
    if loader != _SAFE_LOADER or "code" in pyfunc or sk.get("code") or pyfunc.get("code"):
        raise UnsafeModelError(
            f"{what} declares loader {loader!r} or bundled code; retrainer loads only {_SAFE_LOADER} models without code"
        )
    rel = sk.get("pickled_model") or pyfunc.get("model_path")
    path = (model_dir / str(rel)).resolve() if rel else None
    if path is None or model_dir.resolve() not in path.parents or not path.is_file():
        raise UnsafeModelError(f"{what} names no model file inside its artifact ({rel!r}); refused")
    return path


def check_skops_types(skops_file: Path, policy: TrustPolicy, what: str) -> list[str]:
    """The types to trust when loading ``skops_file``: all of them on the allow-list, or an error."""
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(file=skops_file)
    except Exception as exc:  # noqa: BLE001 - a malformed file is refused, whatever skops says
        raise UnsafeModelError(f"{what} is not a readable skops file ({type(exc).__name__}: {exc}); refused") from None
    bad = policy.untrusted(found)
    if bad:
        raise UnsafeModelError(
            f"{what} references types retrainer does not trust: {', '.join(bad)}; if you trust them, list them "
            "under estimator.trusted_types in retrainer.yaml"
        )
    return list(found)


def load_checked(model_dir: Path, policy: TrustPolicy, what: str, flavor: str = "pyfunc") -> Any:
    """Load a downloaded model after both checks, with skops and retrainer's own trusted list.

    MLflow's loaders are not used for the bytes: they read the trusted list from the artifact
    (and MLflow 3 refuses skops too while the pickle switch is off, as retrainer keeps it). The
    ``pyfunc`` flavor is MLflow's ``PyFuncModel`` around the estimator, so the logged signature
    is still enforced on every predict.
    """
    import skops.io as sio

    skops_file = check_mlmodel(model_dir, what)
    trusted = check_skops_types(skops_file, policy, what)
    estimator = sio.load(skops_file, trusted=trusted)
    if flavor == "sklearn":
        return estimator
    from mlflow.models import Model
    from mlflow.pyfunc import PyFuncModel

    return PyFuncModel(model_meta=Model.load(str(model_dir / "MLmodel")), model_impl=_EstimatorPyfunc(estimator))


class _EstimatorPyfunc:
    """The pyfunc implementation over an estimator retrainer loaded itself."""

    def __init__(self, estimator: Any) -> None:
        self.sklearn_model = estimator
        if hasattr(estimator, "predict_proba"):
            self.predict_proba = estimator.predict_proba

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self.sklearn_model.predict(data)

    def get_raw_model(self) -> Any:
        return self.sklearn_model


def trusted_types_for(model: Any, policy: TrustPolicy) -> Sequence[str]:
    """At registration: the skops types of ``model``, refused when any is off the allow-list."""
    import skops.io as sio

    found = sio.get_untrusted_types(data=sio.dumps(model))
    bad = policy.untrusted(found)
    if bad:
        raise UnsafeModelError(
            f"the model references types outside the allow-list: {', '.join(bad)}; list them under "
            "estimator.trusted_types in retrainer.yaml if you trust that package"
        )
    return list(found)


__all__ = [
    "BASE_TRUSTED_PREFIXES",
    "TrustPolicy",
    "check_mlmodel",
    "check_skops_types",
    "load_checked",
    "trusted_types_for",
]
