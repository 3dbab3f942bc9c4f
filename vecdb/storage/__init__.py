"""Storage layer: the LMDB environment, memory-mapped vector segments and the writer lock.

Nothing here knows about collections' public API or indexes; upper layers call down into it.
"""
