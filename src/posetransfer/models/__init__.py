"""Networks, one file per paper: ``pg2`` (G1, G2, PairDiscriminator); shared ``blocks``."""

from posetransfer.models.pg2 import G1, G2, PairDiscriminator

__all__ = ["G1", "G2", "PairDiscriminator"]
