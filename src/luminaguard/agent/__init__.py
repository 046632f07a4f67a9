"""The reasoning loop: run → step → query the model → gate → act → observe."""
