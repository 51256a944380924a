"""The pose studio web app and PG2's user-study page (``posetransfer serve``).

:func:`~posetransfer.studio.app.create_app` builds the ASGI app; :mod:`posetransfer.studio.study`
holds the study's SQLite store. The pages are static files in ``static/`` (package data).
"""
