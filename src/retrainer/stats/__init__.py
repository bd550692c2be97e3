"""retrainer.stats."""
