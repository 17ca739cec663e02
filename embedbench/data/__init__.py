"""Data sources: where texts, judgements and training examples come from."""
