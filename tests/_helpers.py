"""Helpers shared by several test files (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from posetransfer.pose.io import read_annotations, write_annotations, write_pairs


def copy_plain_subset(src: Path, dst: Path, n: int = 8, *, both_ways: bool = True, link: bool = False) -> list[str]:
    """A plain-layout data set in ``dst`` of the first ``n`` images of the real-mini set ``src``.

    Images are copied (tests that break them need copies) or symlinked with ``link``; ``pairs.csv``
    holds the first two images as one pair, or in both directions with ``both_ways``.
    """
    ann = read_annotations(src / "annotation.csv")
    names = sorted(ann)[:n]
    (dst / "images").mkdir(parents=True)
    for name in names:
        (os.symlink if link else shutil.copy)(src / "images" / name, dst / "images" / name)
    write_annotations(dst / "annotation.csv", {k: ann[k] for k in names})
    pairs = [(names[0], names[1]), (names[1], names[0])] if both_ways else [(names[0], names[1])]
    write_pairs(dst / "pairs.csv", pairs)
    return names


def run_launcher(cmd: list[str], env: dict[str, str], timeout: float = 600):
    """Run a multi-process launcher (torchrun) and return its CompletedProcess; past ``timeout``
    the whole process group is killed and the test fails with what it printed so far, so a hang
    under a loaded machine says where it stood instead of a bare TimeoutExpired."""
    import os
    import signal
    import subprocess

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"{cmd[:6]} did not finish in {timeout:.0f} s; its output:\n{out[-4000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")

