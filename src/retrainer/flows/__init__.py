"""retrainer.flows."""
