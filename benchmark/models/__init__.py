"""Models: trunks (feature extractors), the embedder, and the cached pretraining of the small CNN."""
