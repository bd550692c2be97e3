"""Rollout decisions: state, evidence, the decision rule, A/B hashing, shadow reports, the guard, promotion."""
