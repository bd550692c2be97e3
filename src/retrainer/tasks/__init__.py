"""retrainer.tasks."""
