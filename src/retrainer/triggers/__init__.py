"""retrainer.triggers."""
