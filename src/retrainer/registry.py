"""The MLflow model registry, narrowed to what retrainer does with it.

One :class:`Registry` serves one registered model. Production is the ``champion`` alias and
staging the ``challenger`` alias (MLflow stages are deprecated). Models are loaded only as
``models:/<configured name>@<alias>`` or ``models:/<configured name>/<version>`` from the
configured registry: there is deliberately no way to load an arbitrary path, run artifact or
pickle through this class.

MLflow's fluent API (log_model, load_model) reads process-global URIs; :meth:`Registry.activated`
points them at this registry for the duration of a call, under a lock, and restores them.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from retrainer.errors import RegistryError
from retrainer.registry_alias import CHALLENGER, CHAMPION  # there so that readers without MLflow share them
from retrainer.model_safety import TrustPolicy, check_mlmodel, check_skops_types, load_checked
from retrainer.champion_info import ChampionInfo

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from retrainer.config import RetrainerConfig

IDEMPOTENCY_TAG = "retrainer.idempotency_key"

# MLflow aliases: letters, digits, '_' and '-'; "latest" and "v<digits>" are reserved by MLflow.
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,254}$")
_VERSION = re.compile(r"^[1-9][0-9]{0,17}$")
# Idempotency keys end up inside an MLflow filter string: keep them to characters that need no quoting.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,249}$")

# Fluent MLflow calls use process-global URIs; serialise our use of them.
_FLUENT_LOCK = threading.RLock()

# A fresh sqlite:/// registry makes MLflow log "Creating initial MLflow database tables..." and
# "Updating database tables" at INFO on stderr: MLflow's housekeeping, not the user's model.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)


def _not_found(exc: MlflowException) -> bool:
    return exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


def check_idempotency_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise RegistryError(
            f"idempotency key {key!r} is not usable: use 1-250 letters, digits, '_', '.', ':' or '-' "
            "(e.g. a hex digest), starting with a letter or digit"
        )
    return key


class Registry:
    """One registered model in one MLflow registry."""

    def __init__(
        self,
        tracking_uri: str,
        registry_uri: str | None = None,
        *,
        model_name: str,
        experiment: str | None = None,
        artifact_location: str | Path | None = None,
        trust: TrustPolicy | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.trust = trust or TrustPolicy()
        self.registry_uri = registry_uri or tracking_uri
        self.model_name = model_name
        self.experiment_name = experiment or f"retrainer/{model_name}"
        self.artifact_location = str(artifact_location) if artifact_location is not None else None
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    @classmethod
    def from_config(cls, cfg: RetrainerConfig) -> Registry:
        return cls(
            cfg.mlflow.tracking_uri,
            cfg.mlflow.registry_uri,
            model_name=cfg.model.name,
            experiment=cfg.mlflow.experiment,
            artifact_location=cfg.mlflow.artifact_location,
            trust=TrustPolicy.for_estimator(cfg.estimator.class_path, cfg.estimator.trusted_types),
        )

    def __repr__(self) -> str:
        return f"Registry(model_name={self.model_name!r}, registry_uri={self.registry_uri!r})"

    # -- fluent-API scope -------------------------------------------------------------------

    @contextmanager
    def activated(self) -> Iterator[None]:
        """Point MLflow's process-global URIs at this registry for the block, then restore them."""
        with _FLUENT_LOCK:
            before_tracking, before_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.registry_uri)
            try:
                yield
            finally:
                mlflow.set_tracking_uri(before_tracking)
                mlflow.set_registry_uri(before_registry)

    # -- experiment and registered model ----------------------------------------------------

    def ensure_experiment(self, name: str | None = None, artifact_location: str | Path | None = None) -> str:
        """The id of experiment ``name`` (default: the configured one), created if missing."""
        name = name or self.experiment_name
        location = artifact_location if artifact_location is not None else self.artifact_location
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            if existing.lifecycle_stage == "deleted":
                raise RegistryError(
                    f"MLflow experiment {name!r} is deleted: restore it (mlflow experiments restore) "
                    "or configure another mlflow.experiment"
                )
            return existing.experiment_id
        uri = Path(location).resolve().as_uri() if location and "://" not in str(location) else location
        try:
            return self.client.create_experiment(name, artifact_location=uri)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_ALREADY_EXISTS":  # created concurrently
                found = self.client.get_experiment_by_name(name)
                if found is not None:
                    return found.experiment_id
            raise RegistryError(f"cannot create MLflow experiment {name!r}: {exc.message}") from exc

    def ensure_registered_model(self) -> None:
        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException as exc:
            if not _not_found(exc):
                raise RegistryError(f"cannot read registered model {self.model_name!r}: {exc.message}") from exc
            try:
                self.client.create_registered_model(self.model_name)
            except MlflowException as exc2:
                if exc2.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise RegistryError(f"cannot create registered model {self.model_name!r}: {exc2.message}") from exc2

    # -- versions and aliases ---------------------------------------------------------------

    def get_version(self, version: str | int) -> ModelVersion:
        v = self._check_version(version)
        try:
            return self.client.get_model_version(self.model_name, v)
        except MlflowException as exc:
            raise RegistryError(f"model {self.model_name!r} has no version {v}: {exc.message}") from exc

    def alias_version(self, alias: str) -> str | None:
        """The version an alias points to, or None when the alias (or the model) does not exist."""
        self._check_alias(alias)
        try:
            return str(self.client.get_model_version_by_alias(self.model_name, alias).version)
        except MlflowException as exc:
            if _not_found(exc):
                return None
            raise RegistryError(f"cannot read alias {alias!r} of {self.model_name!r}: {exc.message}") from exc

    def _info(self, alias: str) -> ChampionInfo | None:
        version = self.alias_version(alias)
        if version is None:
            return None
        mv = self.get_version(version)
        created = (
            datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=timezone.utc)
            if mv.creation_timestamp is not None
            else None
        )
        return ChampionInfo(version=str(mv.version), created_at=created, run_id=mv.run_id, tags=dict(mv.tags or {}))

    def champion(self) -> ChampionInfo | None:
        """The production model (``champion`` alias), or None before the first promotion."""
        return self._info(CHAMPION)

    def challenger(self) -> ChampionInfo | None:
        """The staged candidate (``challenger`` alias), or None."""
        return self._info(CHALLENGER)

    def set_alias(self, alias: str, version: str | int) -> None:
        """Point ``alias`` at ``version`` (which must exist)."""
        self._check_alias(alias)
        v = str(self.get_version(version).version)
        try:
            self.client.set_registered_model_alias(self.model_name, alias, v)
        except MlflowException as exc:
            raise RegistryError(f"cannot set alias {alias!r} of {self.model_name!r} to {v}: {exc.message}") from exc

    def delete_alias(self, alias: str) -> bool:
        """Remove ``alias``; False when it did not exist."""
        self._check_alias(alias)
        if self.alias_version(alias) is None:
            return False
        try:
            self.client.delete_registered_model_alias(self.model_name, alias)
        except MlflowException as exc:
            if _not_found(exc):
                return False
            raise RegistryError(f"cannot delete alias {alias!r} of {self.model_name!r}: {exc.message}") from exc
        return True

    def search_versions(self, **tags: str) -> list[ModelVersion]:
        """Versions of this model whose tags equal the given values (keys are tag names)."""
        clauses = [f"name = '{self.model_name}'"]
        for key, value in tags.items():
            if not _KEY.match(key) or not _KEY.match(value):  # both go inside a filter string
                raise RegistryError(f"tag {key!r}={value!r} cannot be searched: use letters, digits, '_', '.', ':' or '-'")
            clauses.append(f"tags.`{key}` = '{value}'")
        return self._search(" and ".join(clauses))

    def versions_for_run(self, run_id: str) -> list[ModelVersion]:
        if not re.fullmatch(r"[A-Za-z0-9\-]{1,64}", run_id or ""):
            raise RegistryError(f"{run_id!r} is not an MLflow run id")
        return self._search(f"name = '{self.model_name}' and run_id = '{run_id}'")

    def _search(self, filter_string: str) -> list[ModelVersion]:
        try:
            found = list(self.client.search_model_versions(filter_string))
        except MlflowException as exc:
            if _not_found(exc):
                return []
            raise RegistryError(f"cannot search versions of {self.model_name!r}: {exc.message}") from exc
        return sorted(found, key=lambda mv: int(mv.version))

    def version_for_key(self, idempotency_key: str) -> str | None:
        """The version registered under ``idempotency_key`` (the lowest if, somehow, several)."""
        check_idempotency_key(idempotency_key)
        found = self.search_versions(**{IDEMPOTENCY_TAG: idempotency_key})
        return str(found[0].version) if found else None

    # -- loading ----------------------------------------------------------------------------

    def model_uri(self, alias_or_version: str | int) -> str:
        """``models:/<name>/<version>`` or ``models:/<name>@<alias>``: the only URIs we load."""
        ref = str(alias_or_version)
        if _VERSION.match(ref):
            return f"models:/{self.model_name}/{ref}"
        if _ALIAS.match(ref):
            return f"models:/{self.model_name}@{ref}"
        raise RegistryError(
            f"{alias_or_version!r} is neither a version number nor an alias of {self.model_name!r}; "
            "models are loaded only from the configured registry (e.g. 'champion', 'challenger', '3')"
        )

    def load_model(self, alias_or_version: str | int, *, flavor: Literal["pyfunc", "sklearn"] = "pyfunc") -> Any:
        """Load a version of the configured model by alias or version number.

        ``pyfunc`` enforces the logged signature on every predict; ``sklearn`` returns the
        estimator (for ``predict_proba`` when scoring the champion). The version is downloaded,
        checked by :mod:`retrainer.model_safety` (skops, allow-listed types, no bundled code) and
        loaded from that same local copy with retrainer's trusted list, never the artifact's.
        """
        if flavor not in ("pyfunc", "sklearn"):
            raise RegistryError(f"flavor must be 'pyfunc' or 'sklearn', not {flavor!r}")
        with self._checked_copy(alias_or_version) as (version, local):
            return load_checked(local, self.trust, f"{self.model_name} version {version}", flavor)

    def check_loadable(self, alias_or_version: str | int) -> str:
        """Refuse a version retrainer would not load (before promote, shadow or A/B); returns its number."""
        with self._checked_copy(alias_or_version) as (version, local):
            what = f"{self.model_name} version {version}"
            check_skops_types(check_mlmodel(local, what), self.trust, what)
            return version

    @contextmanager
    def _checked_copy(self, alias_or_version: str | int) -> Iterator[tuple[str, Path]]:
        """A local copy of the version (an alias resolved once, so the check and the load see one version)."""
        import tempfile

        ref = str(alias_or_version)
        self.model_uri(ref)  # validates the reference's form
        version = ref if _VERSION.match(ref) else self.alias_version(ref)
        if version is None:
            raise RegistryError(f"model {self.model_name!r} has no alias {ref!r}")
        with tempfile.TemporaryDirectory(prefix="retrainer-model-") as tmp:
            try:
                with self.activated():
                    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=self.model_uri(version), dst_path=tmp))
            except MlflowException as exc:
                raise RegistryError(f"cannot download {self.model_uri(version)}: {exc.message}") from exc
            yield version, local

    # -- validation -------------------------------------------------------------------------

    @staticmethod
    def _check_alias(alias: str) -> None:
        if not isinstance(alias, str) or not _ALIAS.match(alias) or alias == "latest" or re.fullmatch(r"[vV]\d+", alias):
            raise RegistryError(f"{alias!r} is not a usable alias (letters, digits, '_', '-'; not 'latest' or 'v<n>')")

    @staticmethod
    def _check_version(version: str | int) -> str:
        v = str(version)
        if not _VERSION.match(v):
            raise RegistryError(f"{version!r} is not a model version number")
        return v


__all__ = ["CHALLENGER", "CHAMPION", "IDEMPOTENCY_TAG", "ChampionInfo", "Registry", "check_idempotency_key"]
