"""The prediction service: app, routing, the durable write path, shadow work at request time, metrics.

It reads who serves from ``deployments.rollout``; the rollout side never imports it."""
