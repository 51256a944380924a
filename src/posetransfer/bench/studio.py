"""Load benchmark of ``posetransfer serve``: N concurrent clients posting ``/api/transfer`` for S seconds.

    python -m posetransfer.bench.studio [--checkpoint RUN] [--clients 8] [--seconds 60] [--json OUT]

The server runs as its own process (``posetransfer serve``), as a user would start it; each
client is a thread with its own HTTP connection that sends one source photo and a library pose
(cycling through the library), waits for the PNG and sends the next. Reported: latency p50/p95
of the successful requests, throughput (successes per second), the 503s of the bounded queue,
and the server process's peak resident memory (``VmHWM`` of ``/proc/PID/status``).

Without ``--checkpoint`` the model is the demo's final one (PG2 stage II at 128x64, the
architecture of :func:`posetransfer.demo.stage1_config` / ``stage2_config``) trained for two steps
on a small synthetic set: serving time depends on the architecture, not on the weights.
This is a benchmark, not a test (it takes a minute).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def demo_architecture_run(root: Path) -> Path:
    """The demo's stage I + stage II trained for 2 steps each into ``root`` (returns the stage II run)."""
    from posetransfer.data.synth import synthesize
    from posetransfer.demo import DemoSettings, stage1_config, stage2_config
    from posetransfer.training.base import train
    from posetransfer.training.config import config_from_dict

    s = DemoSettings(identities=8, views=3, batch_size=4).scaled(0.0)
    data = root / "data"
    synthesize(data, size=s.size, identities=s.identities, views=s.views, seed=0, progress=False)
    train(config_from_dict(stage1_config(s, data), source="bench:stage1"), root / "stage1", progress=False)
    train(config_from_dict(stage2_config(s, data, root / "stage1"), source="bench:stage2"), root / "stage2", progress=False)
    return root / "stage2"


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _photo(size: tuple[int, int]) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def run_load(url: str, clients: int, seconds: float, photo: bytes, poses: list[str]) -> dict:
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=120.0) as http:
            i = k
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                r = http.post("/api/transfer", files={"source": ("p.png", photo, "image/png")},
                              data={"pose": poses[i % len(poses)]})  # fmt: skip
                dt = time.perf_counter() - t0
                with lock:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 200:
                        latencies.append(dt)
                i += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1000
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests_ok": len(latencies),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "throughput_per_s": round(len(latencies) / wall, 2),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 1) if len(lat) else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m posetransfer.bench.studio", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=None, help="run to serve (default: the demo's architecture, 2 steps)")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--port", type=int, default=8791)
    p.add_argument("--threads", type=int, default=None, help="OMP/torch threads of the server (default: torch's)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)

    from posetransfer.pose.library import POSES

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tmp = Path(tmp)
        ckpt = args.checkpoint or demo_architecture_run(tmp / "model")
        env = dict(os.environ)
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        cmd = [sys.executable, "-m", "posetransfer", "serve", "--checkpoint", str(ckpt), "--port", str(args.port),
               "--state", str(tmp / "state"), "--device", "cpu", "--max-queue", str(max(8, args.clients))]  # fmt: skip
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{args.port}"
        try:
            import httpx

            deadline = time.time() + 120
            while True:
                try:
                    info = httpx.get(url + "/healthz", timeout=2).json()
                    break
                except httpx.HTTPError:
                    if server.poll() is not None or time.time() > deadline:
                        raise SystemExit(f"the server did not start: {server.stderr.read().decode()[-2000:]}")
                    time.sleep(0.5)
            h, w = info["model"]["image_size"]
            idle_mb = _peak_rss_mb(server.pid)
            result = run_load(url, args.clients, args.seconds, _photo((h * 2, w * 2)), list(POSES))
            result.update(model=info["model"], server_peak_rss_mb=_peak_rss_mb(server.pid),
                          server_rss_after_start_mb=idle_mb, load_average=os.getloadavg(), cpus=os.cpu_count())  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps(result, indent=2))
    if args.json:
        from posetransfer.utils.io import atomic_write_json

        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
