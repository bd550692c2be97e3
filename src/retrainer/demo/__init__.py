"""`retrainer demo`: the whole loop on embedded defaults, from nothing."""
