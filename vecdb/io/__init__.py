"""Operations on whole databases and collections: backup and restore (backup.py), the
integrity check and repair (check.py), import and export of vectors with their ids, metadata
and documents (transfer.py, formats.py), and progress reporting shared by all of them
(progress.py). These modules sit above Database and Collection and are reached through their
methods (``db.backup``, ``db.check``, ``db.import_``, ``col.export``, ``col.add_from``) and
``vecdb.restore``; nothing below them imports them.
"""
