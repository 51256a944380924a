"""Data sets and their files: layouts, pairs, torch datasets, checks, transforms, synthetic people.

Kept import-free so ``posetransfer --help`` and light tools do not pay for torch; import the
submodules (``posetransfer.data.datasets``, ``.layouts``, ``.pairs``, ``.check``) directly.
"""
