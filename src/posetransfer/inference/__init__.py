"""Inference: the one road from a checkpoint to pixels.

* :mod:`~posetransfer.inference.loader`: :func:`load_generator` turns any checkpoint reference (a
  step folder, a run folder, an exported folder, a Hugging Face Hub repo id) into the task, its
  networks, config and image size;
* :mod:`~posetransfer.inference.generate`: :func:`generate_pairs` over a data set folder
  (``posetransfer generate``);
* :mod:`~posetransfer.inference.pipeline`: :class:`Pipeline` for one's own photos
  (``posetransfer transfer``);
* :mod:`~posetransfer.inference.export`: :func:`export_model`, a self-contained, shareable folder
  (``posetransfer export``).

Batches are built by :func:`posetransfer.data.inputs.model_inputs` from the task's input spec, as
in training.
"""

from posetransfer.inference.export import export_model
from posetransfer.inference.generate import generate_pairs, output_name
from posetransfer.inference.loader import Generator, load_generator, resolve_model
from posetransfer.inference.pipeline import Pipeline, TransferResult, read_pose_file

__all__ = [
    "Generator",
    "load_generator",
    "resolve_model",
    "generate_pairs",
    "output_name",
    "Pipeline",
    "TransferResult",
    "read_pose_file",
    "export_model",
]
