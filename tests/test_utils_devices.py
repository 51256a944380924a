"""utils.devices.resolve_device: the one reading of --device, with one clear line for a device
name torch does not know or a device this machine lacks (torch's own: an AssertionError)."""

from __future__ import annotations

import pytest
import torch

from posetransfer.cli import main
from posetransfer.errors import ConfigError
from posetransfer.utils.devices import resolve_device


def test_auto_cpu_and_a_torch_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_unknown_names_and_missing_devices_are_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"--device 'gpu': not a device; use auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
    with pytest.raises(ConfigError, match=r"--device cuda: no CUDA device is available here .*use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match=r"train.device xla: posetransfer runs on cpu, cuda or mps, not xla"):
        resolve_device("xla", option="train.device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"cuda:2: this machine has 2 CUDA device\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # nothing is allocated on it


@pytest.mark.parametrize("command", ["transfer", "generate"])
def test_commands_refuse_a_bad_device_before_loading_anything(command, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    photo = tmp_path / "p.png"
    args = {"transfer": ["--source", str(photo), "--pose", "walking"], "generate": ["--data", str(tmp_path)]}[command]
    for device, said in (("gpu", "not a device"), ("cuda", "no CUDA device is available")):
        code = main([command, "--checkpoint", str(tmp_path / "no-such-run"), *args, "--out", str(tmp_path / "o"), "--device", device])
        err = capsys.readouterr().err
        assert code == 2 and said in err and err.count("\n") == 1, err
