"""Query layer: planning a search over a collection's indexes (filters, BM25 and fusion join
here later)."""
