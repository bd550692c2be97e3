"""retrainer.testing."""
