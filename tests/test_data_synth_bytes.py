"""The synthetic people are byte-identical to those of the single-module renderer (before
``render_person`` was split into named parts): a hash of every file captured before the split."""

from __future__ import annotations

import hashlib

from posetransfer.data.synth import synthesize

# sha256 over (relative path, bytes) of every file, in sorted path order; captured with the
# 1,091-line data/synth.py of commit 4bdc0f6 for exactly these arguments
BEFORE_SPLIT = "6134ea5b9d31225f9ab962d026d2bee2a1395173bfe85fea035793d2afbc7b33"


def test_same_bytes_as_before_the_split(tmp_path):
    out = tmp_path / "people"
    synthesize(out, size=(64, 32), identities=4, views=3, seed=3, progress=False)
    h = hashlib.sha256()
    for p in sorted(out.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(out)).encode())
            h.update(p.read_bytes())
    assert h.hexdigest() == BEFORE_SPLIT
