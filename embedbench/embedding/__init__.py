"""The encoding layer: model loading, the one all-layer forward, views, runtimes, device pools and the
embedding cache. Jobs and data preparation (mining, teachers, samplers) encode through
:class:`embedbench.embedding.embedder.Embedder`."""
