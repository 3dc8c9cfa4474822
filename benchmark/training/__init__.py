"""Training: the fold trainer and its class-balanced batch sampler."""
