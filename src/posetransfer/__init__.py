"""posetransfer: pose-guided person image generation (PG2 and the multi-view ConvLSTM generator)."""

__version__ = "0.1.0"
