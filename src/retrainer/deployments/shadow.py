"""Shadow deployment, one module per job (this module only names them):

* :mod:`retrainer.deployments.shadow_queue`: the request-path queue and its workers
  (:class:`ShadowRunner`, :class:`ShadowJob`);
* :mod:`retrainer.deployments.shadow_worker`: the worker-process protocol
  (:class:`ShadowModelSource`, :func:`load_registry_model`);
* :mod:`retrainer.deployments.shadow_report`: the report from stored comparisons (:func:`summarize`);
* :mod:`retrainer.deployments.rollout`: the shadow switch decoded from the ledger
  (:func:`shadow_target`), beside ``ShadowState``.
"""

from __future__ import annotations

from retrainer.deployments.rollout import SHADOW_ACTIONS, shadow_target
from retrainer.deployments.shadow_queue import ShadowJob, ShadowRunner, ShadowStats
from retrainer.deployments.shadow_report import summarize
from retrainer.deployments.shadow_worker import ShadowModelSource, load_registry_model

__all__ = [
    "SHADOW_ACTIONS",
    "ShadowJob",
    "ShadowModelSource",
    "ShadowRunner",
    "ShadowStats",
    "load_registry_model",
    "shadow_target",
    "summarize",
]
