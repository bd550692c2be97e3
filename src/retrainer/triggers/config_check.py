"""Everything ``retrainer check`` would build from a config, checked without running it.

``config validate`` calls this so a file that parses but names an unknown trigger type, a
misspelt trigger parameter or a malformed store URL is reported before the first ``check``,
all problems at once, each with its field path.
"""

from __future__ import annotations

from retrainer.config import RetrainerConfig
from retrainer.errors import RetrainerError
from retrainer.store.engine import normalize_url
from retrainer.triggers.policy import build_policy
from retrainer.triggers.registry import trigger_problems


def config_problems(cfg: RetrainerConfig) -> list[str]:
    """One line per problem (``<field path>: <what is wrong>``); empty when ``check`` could start."""
    problems = trigger_problems(cfg.triggers)
    if not problems:  # the policy itself (combination, guard) only once every trigger builds
        try:
            build_policy(cfg)
        except RetrainerError as exc:
            problems.append(f"policy: {' '.join(str(exc).split())}")
    try:
        normalize_url(cfg.store.url)
    except RetrainerError as exc:
        problems.append(f"store.url: {exc}")
    return problems
