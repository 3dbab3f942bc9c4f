"""Indexes: Python objects over the C core that answer k-nearest queries on a row snapshot."""
