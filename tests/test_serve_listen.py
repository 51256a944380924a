"""``posetransfer serve``: a port that cannot be listened on is one line before the model loads."""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("uvicorn")

from posetransfer.cli import main  # noqa: E402


def test_a_busy_port_and_an_out_of_range_one(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # the checkpoint does not exist: the port is checked first, so that is not what is said
        assert main(["serve", "--checkpoint", str(tmp_path / "none"), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}: cannot listen there (address already in use)" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--checkpoint", str(tmp_path / "none"), "--port", "70000"])
    assert exit_.value.code == 2 and "a port is 0 to 65535, got 70000" in capsys.readouterr().err
