"""Run logging on rank 0: TensorBoard scalars and image grids, PNG samples, a tqdm progress bar.

Everything here is a no-op on other ranks (``enabled=False``), so the trainer calls it
unconditionally. TensorBoard files go to ``RUN_DIR/tb`` (``tensorboard --logdir RUN_DIR/tb``);
each sample grid is also written as ``RUN_DIR/samples/step_XXXXXXX.png`` (atomically).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from posetransfer.utils.io import save_image

__all__ = ["RunLogger"]


class RunLogger:
    def __init__(self, run_dir: Path, *, enabled: bool, total: int, initial: int, progress: bool, description: str = "train"):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._writer: Any = None
        self.bar = tqdm(
            total=total,
            initial=initial,
            desc=description,
            unit="it",
            dynamic_ncols=True,
            disable=not (enabled and progress),
            smoothing=0.1,
        )

    @property
    def writer(self) -> Any:
        if self._writer is None and self.enabled:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))
        return self._writer

    def advance(self, n: int = 1) -> None:
        self.bar.update(n)

    def scalars(self, step: int, values: dict[str, float], prefix: str = "") -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}{name}", float(value), step)
        if prefix in ("", "loss/"):
            self.bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in values.items()}, refresh=False)

    def image(self, step: int, tag: str, image: np.ndarray) -> None:
        """Log an H x W x 3 uint8 grid to TensorBoard and write it as a PNG under samples/."""
        if not self.enabled:
            return
        self.writer.add_image(tag, image, step, dataformats="HWC")
        save_image(self.run_dir / "samples" / f"step_{step:07d}.png", image)

    def message(self, text: str) -> None:
        if self.enabled:
            self.bar.write(text)

    def close(self) -> None:
        self.bar.close()
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
