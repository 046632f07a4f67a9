"""Model providers behind the ``Provider`` protocol, opened from a model spec."""
