"""Search: FAISS indexes over embeddings (exact, quantised, graphs, funnels) and BM25, behind one
:class:`~embedbench.retrieval.base.Retriever` interface."""
