"""From the official downloads to the field's data layouts (``posetransfer data import``).

- :mod:`.deepfashion`: the DeepFashion In-shop ``img/`` (or ``img_highres/``) tree -> the field's
  DeepFashion layout (``train/``, ``test/``, ``fasion-*-annotation-*.csv``, ``fasion-*-pairs-*.csv``)
  at 256x176 (the field's crop) or 256x256 (PG2's frame).
- :mod:`.market`: the Market-1501 archive -> the field's Market layout.

Both share :mod:`.common`: the resumable output folder (per-image atomic writes, a marker holding
the options, a manifest written last), the pose extraction of images the annotations miss, and the
closing ``data check``.
"""
