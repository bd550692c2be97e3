"""retrainer.deployments."""
