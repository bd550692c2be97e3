"""How a model reaches traffic: the prediction service (serving) above the rollout decisions (rollout)."""
