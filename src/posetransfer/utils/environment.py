"""What this installation has, for ``posetransfer info`` and bug reports: versions, the CPU and
GPUs, the precision ``auto`` picks, which optional extras are installed and which pretrained files
are found. Nothing here loads a network or imports an extra (``importlib.util.find_spec`` and the
installed packages' metadata only), so it answers in well under a second.
"""

from __future__ import annotations

import importlib.util
import platform
from importlib import metadata
from typing import Any

from posetransfer.utils import perf

#: the extras of pyproject.toml: the modules each one brings, and what needs it
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "pose": (("mediapipe",), "pose extract, data prepare, transfer --pose PHOTO"),
    "video": (("av",), "animate, pose track, data walk"),
    "studio": (("fastapi", "uvicorn", "multipart"), "serve"),
    "hub": (("huggingface_hub",), "--checkpoint owner/name (Hugging Face Hub)"),
}
#: the distribution a module is installed from, when its name differs
_DISTRIBUTIONS = {"av": "av", "multipart": "python-multipart", "huggingface_hub": "huggingface_hub"}


def _version(module: str) -> str | None:
    try:
        return metadata.version(_DISTRIBUTIONS.get(module, module))
    except metadata.PackageNotFoundError:
        return None


def extras_status() -> dict[str, dict[str, Any]]:
    """Each extra: installed or not, its modules' versions, what needs it, how to install it."""
    out = {}
    for extra, (modules, used_by) in EXTRAS.items():
        found = {m: (_version(m) or "?") if importlib.util.find_spec(m) is not None else None for m in modules}
        out[extra] = {
            "installed": all(v is not None for v in found.values()), "modules": found, "used_by": used_by,
            "install": f"pip install -c constraints.txt -e '.[{extra}]'",
        }  # fmt: skip
    return out


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what :mod:`platform` says elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_report() -> dict[str, Any]:
    import torch

    from posetransfer import __version__
    from posetransfer.utils.weights import REGISTRY, find_weights, search_dirs

    cuda = torch.cuda.is_available()
    gpus = []
    for i in range(torch.cuda.device_count() if cuda else 0):
        p = torch.cuda.get_device_properties(i)
        gpus.append({"index": i, "name": p.name, "memory_gb": round(p.total_memory / 2**30, 1),
                     "capability": f"{p.major}.{p.minor}", "bf16": torch.cuda.is_bf16_supported()})  # fmt: skip
    return {
        "posetransfer": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": {"model": cpu_model(), "usable_cpus": perf.usable_cpus(), "native_bf16": perf.cpu_has_bf16(),
                "glibc": perf.glibc_version()},  # fmt: skip
        "torch": {"version": torch.__version__, "threads": torch.get_num_threads(), "cuda": torch.version.cuda,
                  "cuda_available": cuda, "gpus": gpus},  # fmt: skip
        "precision_auto": {"cpu": perf.resolve_precision("cpu"), **({"cuda": perf.resolve_precision("cuda")} if cuda else {})},
        "extras": extras_status(),
        "weights": {"searched": [str(d) for d in search_dirs()],
                    "found": {name: str(p) if (p := find_weights(name)) else None for name in REGISTRY}},  # fmt: skip
    }


def format_report(r: dict[str, Any]) -> list[str]:
    cpu, t = r["cpu"], r["torch"]
    lines = [
        f"posetransfer {r['posetransfer']}, Python {r['python']}, {r['platform']}",
        f"CPU: {cpu['model']}, {cpu['usable_cpus']} usable, native bf16: {'yes' if cpu['native_bf16'] else 'no'}"
        f" (precision auto on the CPU: {r['precision_auto']['cpu']})",
        f"torch {t['version']}, {t['threads']} threads, CUDA {t['cuda'] or 'none (CPU build)'}",
    ]
    if t["gpus"]:
        lines += [f"  GPU {g['index']}: {g['name']}, {g['memory_gb']} GB, compute {g['capability']}, bf16 {g['bf16']}" for g in t["gpus"]]
    elif t["cuda"]:
        lines.append("  no CUDA device visible")
    lines.append("extras:")
    for name, e in r["extras"].items():
        if e["installed"]:
            state = "installed (" + ", ".join(f"{m} {v}" for m, v in e["modules"].items()) + ")"
        else:
            state = f"missing: {e['install']}"
        lines.append(f"  {name:<7} {state}; for {e['used_by']}")
    found = r["weights"]["found"]
    have = [n for n, p in found.items() if p]
    lines.append(f"pretrained files: {len(have)} of {len(found)} found ({', '.join(have) or 'none'}); "
                 "`posetransfer weights list` says where the others go")  # fmt: skip
    return lines
