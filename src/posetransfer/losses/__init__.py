"""Training objectives, kept apart from the networks (PG2 eqs. 1-4)."""

from posetransfer.losses.adversarial import bce_d_loss, bce_g_loss
from posetransfer.losses.reconstruction import l1, pose_mask_l1

__all__ = ["bce_d_loss", "bce_g_loss", "l1", "pose_mask_l1"]
