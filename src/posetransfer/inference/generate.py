"""Pair generation over a data set folder: what ``posetransfer generate`` runs.

The model comes from :func:`posetransfer.inference.loader.load_generator` (any checkpoint
reference); a PG2 stage-II checkpoint holds its frozen G1 too, so it yields both the stage-I and
stage-II images. The data set is read with the task's own input spec (``Task.dataset_at``).

``OUT/generated.json`` records where the images came from: the checkpoint (its local folder and
step), the data set, split and pair count, the checkpoint config's ``paper`` row (the published
numbers ``evaluate`` shows beside ours) and ``finished`` (false until the last pair is written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Subset

from posetransfer.errors import ConfigError, DataError, OutputError
from posetransfer.evaluation.paper import GENERATED_JSON, read_generated_record
from posetransfer.inference.loader import load_generator
from posetransfer.utils.io import atomic_write_json, save_image
from posetransfer.utils.viz import make_grid, to_uint8

__all__ = ["generate_pairs", "output_name", "read_generated_record", "GENERATED_JSON"]


def output_name(source_name: str, target_name: str) -> str:
    """``<from-stem>___<to-stem>.png``, the file name of a generated pair (the field's convention)."""
    return f"{Path(source_name).stem}___{Path(target_name).stem}.png"


def generate_pairs(
    checkpoint: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    split: str | None = None,
    pairs: str | Path | None = None,
    batch_size: int = 16,
    limit: int | None = None,
    grid_rows: int = 8,
    device: str = "cpu",
    progress: bool = True,
    resume: bool = False,
) -> dict[str, Any]:
    """Generate every pair of a data set; returns ``{"images", "skipped", "grids", "out", "outputs", "step"}``.

    ``OUT/generated.json`` is written before the first image and marked finished after the last
    (module docstring); ``resume`` refuses a folder whose record names another checkpoint.

    Writes ``OUT/<from-stem>___<to-stem>.png`` (the final output: stage II when the checkpoint
    has one, else stage I) and ``OUT/grids/grid_XXX.png``, grid ``g`` holding pairs
    ``g * grid_rows ...`` in columns condition | target pose | target | stage I [| stage II]. Every
    file is written atomically, so a file that is there is whole: with ``resume``, the groups of
    ``grid_rows`` pairs whose PNGs and grid are all there are skipped (an interrupted run continues
    where it stopped; the model is deterministic, so the result equals an uninterrupted run's).
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    gen = load_generator(checkpoint, device)
    dataset = gen.dataset(data, split, pairs)
    from posetransfer.training.base import check_image_sizes

    check_image_sizes(gen.nets, dataset, split or "data")
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise DataError(Path(data), "no pairs to generate")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder")

    record: dict[str, Any] = {
        "checkpoint": str(Path(gen.checkpoint).resolve()), "step": gen.step, "task": gen.config.task,
        "data": str(data), "split": split, "pairs_file": None if pairs is None else str(pairs), "pairs": n,
        "paper": None if gen.config.paper is None else gen.config.paper.model_dump(mode="json"), "finished": False,
    }  # fmt: skip
    earlier = read_generated_record(out) if resume else None
    if earlier is not None:
        said = {k: earlier.get(k) for k in ("checkpoint", "step", "pairs")}
        if said != {k: record[k] for k in said}:
            raise OutputError(
                f"{out / GENERATED_JSON}: these images came from checkpoint {said['checkpoint']} (step {said['step']}, "
                f"{said['pairs']} pairs), not {record['checkpoint']} (step {record['step']}, {n} pairs); "
                "--resume would mix them: choose another --out (or --overwrite without --resume)"
            )
    atomic_write_json(out / GENERATED_JSON, record)  # before any image: a folder with images has its record

    def grid_path(g: int) -> Path:
        return out / "grids" / f"grid_{g:03d}.png"

    def group_size(g: int) -> int:
        return min(grid_rows, n - g * grid_rows)

    groups = (n + grid_rows - 1) // grid_rows
    done = set()
    if resume:
        for g in range(groups):
            names = [output_name(*dataset.item_names(i)) for i in range(g * grid_rows, g * grid_rows + group_size(g))]
            if grid_path(g).is_file() and all((out / name).is_file() for name in names):
                done.add(g)
    todo = [i for i in range(n) if i // grid_rows not in done]
    skipped = n - len(todo)
    loader = DataLoader(Subset(dataset, todo), batch_size=batch_size, shuffle=False, num_workers=0)
    from tqdm import tqdm

    bar = tqdm(total=n, initial=skipped, desc="generate", unit="pair", disable=not progress, dynamic_ncols=True)
    written = 0
    pending: dict[int, list[list[Any]]] = {}
    labels: list[str] = []
    outputs: dict[str, Any] = {}
    position = 0
    try:
        for batch in loader:
            outputs = gen(batch)
            final = outputs[gen.final_output]
            columns = gen.task.visuals(batch, outputs)
            labels = [title for title, _ in columns]
            for i in range(final.shape[0]):
                save_image(out / output_name(batch["source_name"][i], batch["target_name"][i]), to_uint8(final[i].float().cpu()))
                written += 1
                g = todo[position] // grid_rows
                position += 1
                rows = pending.setdefault(g, [])
                rows.append([img[i].float().cpu() for _, img in columns])
                if len(rows) == group_size(g):
                    save_image(grid_path(g), make_grid(pending.pop(g), labels=labels))
            bar.update(final.shape[0])
    finally:
        bar.close()
    atomic_write_json(out / GENERATED_JSON, {**record, "finished": True})
    return {"images": written, "skipped": skipped, "grids": groups - len(done), "out": str(out),
            "outputs": list(outputs), "step": gen.step}  # fmt: skip
