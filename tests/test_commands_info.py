"""``posetransfer info``: what the installation has, read without loading any network or extra."""

from __future__ import annotations

import json
import sys

import torch

from posetransfer.cli import main
from posetransfer.utils import environment as E


def test_info_reports_versions_precision_extras_and_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POSETRANSFER_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    torch.save({"w": torch.zeros(1)}, tmp_path / "body_pose_model.pth")
    # an extra whose module is not installed, and one that is (pytest runs this)
    monkeypatch.setitem(E.EXTRAS, "nothing", (("no_such_module_here",), "nothing at all"))
    monkeypatch.setitem(E.EXTRAS, "tests", (("pytest",), "the tests"))
    assert main(["info", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["torch"]["version"] == torch.__version__ and r["python"] == "%d.%d.%d" % sys.version_info[:3]
    assert r["precision_auto"]["cpu"] in ("fp32", "bf16") and r["cpu"]["usable_cpus"] >= 1
    assert r["extras"]["nothing"]["installed"] is False
    assert r["extras"]["nothing"]["install"] == "pip install -c constraints.txt -e '.[nothing]'"
    assert r["extras"]["tests"] == {"installed": True, "modules": {"pytest": __import__("pytest").__version__},
                                    "used_by": "the tests", "install": "pip install -c constraints.txt -e '.[tests]'"}  # fmt: skip
    assert r["weights"]["found"]["openpose_body"] == str(tmp_path / "body_pose_model.pth")
    assert r["weights"]["found"]["alexnet"] is None
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "nothing missing: pip install" in " ".join(text.split()) and "1 of 6 found (openpose_body)" in text
