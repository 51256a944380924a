#!/usr/bin/env bash
# The GPU check of issue 14, for one H100/H200, in under 8 minutes: run from the repository root.
#
#   OUT=/tmp/device-out scripts/device_check.sh        # (PYTHON=... to pick the interpreter)
#
# 1. the CUDA-marked tests (pytest -m cuda: device data path, fast step, compile, inference);
# 2. bench train --device cuda for the Market G1, Market G1+G2+D (random G1), DeepFashion G1
#    (256x256) and multi-view DeepFashion (G+D_I+D_P)-M recipes (random VGG19 weights: no
#    download here; the speed does not depend on the weights);
# 3. bench infer --device cuda (G1, G1+G2, multi-view at 128x64 and 256x176);
# 4. a 2-minute real training run of the Market G1 recipe on synthetic people (device data path),
#    its length set from step 2's measured images/s; then 150 steps of the multi-view Market
#    (G+D_I+D_P)-M recipe on them, on the device data path and on the worker path, and
#    bench data (batches/s of both data paths, no network) for the multi-view recipes;
# 5. when time is left, the Market G1 step compiled (inductor).
# A dry run of the wiring on a machine without a GPU: DEVICE=cpu QUICK=1 scripts/device_check.sh
# (tiny widths and batches, a few steps; the figures mean nothing then).
#
# What comes back from the project's device machines is at most 8 files: everything the steps
# write goes to $OUT/work/ and is packed at the end (or when the script is stopped) into
# $OUT/device-check.tar.gz, beside $OUT/summary.txt (one line per step, also printed) and
# $OUT/results.json (every benchmark's JSON and each step's exit status in one object).
# Each step has its own time limit, cut to what is left of BUDGET seconds (default 480); a step
# that would get under 20 s is skipped (said in the summary, exit -1 in results.json, not counted
# as a failure); the steps run in the order of their importance. A failed step does not stop the
# others; the exit status is the number of failed steps.
#
# The machine's image has PyTorch but not every package the project needs (pydantic, for one):
# scripts/device_wheels.sh downloads them here into .whl/ (Python 3.12 wheels); carry `.whl` in
# the device call and this script installs them into /tmp/site first.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-device-out}
WORK="$OUT/work"
mkdir -p "$WORK"
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
BUDGET=${BUDGET:-480}
START=$(date +%s)
FAILED=0
SKIPPED=0
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
STATUS="$WORK/status.tsv"
: > "$STATUS"

note() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$SUMMARY"; }

pack() {
  # every benchmark's JSON and each step's status in one file, the rest in one archive
  "$PYTHON" - "$WORK" "$OUT/results.json" <<'EOF' 2>> "$SUMMARY" || true
import json, pathlib, sys
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
res = {"steps": {}, "benchmarks": {}}
for line in (work / "status.tsv").read_text().splitlines():
    name, rc, seconds = line.split("\t")
    res["steps"][name] = {"exit": int(rc), "seconds": int(seconds)}
for p in sorted(work.glob("*.json")):
    try:
        res["benchmarks"][p.stem] = json.loads(p.read_text())
    except ValueError as err:
        res["benchmarks"][p.stem] = {"unreadable": str(err)}
out.write_text(json.dumps(res, indent=1))
EOF
  tar czf "$OUT/device-check.tar.gz" -C "$OUT" work 2>> "$SUMMARY" && rm -rf "$WORK"
}
on_stop() {
  note "stopped by a signal: packing what there is"
  kill $(jobs -p) 2> /dev/null; wait
  pack; exit 99
}
trap on_stop TERM INT

left() { echo $(( BUDGET - ($(date +%s) - START) )); }

# step NAME LIMIT_SECONDS COMMAND...: stdout to work/NAME.out, stderr to work/NAME.log
step() {
  local name=$1 limit=$2; shift 2
  local remaining; remaining=$(left)
  [ "$limit" -gt "$remaining" ] && limit=$remaining
  if [ "$limit" -lt 20 ]; then
    note "$name: skipped (${remaining}s of the ${BUDGET}s budget left; BUDGET=... to allow more)"
    printf '%s\t%s\t%s\n' "$name" -1 0 >> "$STATUS"
    SKIPPED=$((SKIPPED + 1))
    return 1
  fi
  local t0; t0=$(date +%s)
  timeout "$limit" "$@" > "$WORK/$name.out" 2> "$WORK/$name.log" &
  wait $!  # in the background, so a TERM to this script is handled at once
  local rc=$?
  [ $rc -ne 0 ] && FAILED=$((FAILED + 1))
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" >> "$STATUS"
  note "$name: exit $rc in $(( $(date +%s) - t0 ))s (limit ${limit}s)"
  [ $rc -ne 0 ] && tail -n 3 "$WORK/$name.log" | sed 's/^/    /' | tee -a "$SUMMARY"
  return $rc
}

if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    > "$WORK/wheels.log" 2>&1 && export PYTHONPATH="$PYTHONPATH:/tmp/site" && note "installed .whl/ into /tmp/site" \
    || note "installing .whl/ failed (see work/wheels.log)"
fi

note "start $(date -u +%FT%TZ), python $PYTHON, budget ${BUDGET}s"
nvidia-smi > "$WORK/nvidia-smi.txt" 2>&1 || note "nvidia-smi failed"
"$PYTHON" -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'numpy', numpy.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')" 2>&1 | tee -a "$SUMMARY"
# everything the steps import, up front: a missing package is one line here, not eight failed steps
if ! "$PYTHON" -c "import posetransfer.cli, posetransfer.training.tasks, posetransfer.bench.train, posetransfer.bench.infer, pytest" > "$WORK/imports.log" 2>&1; then
  note "the project does not import: $(tail -n 1 "$WORK/imports.log") (scripts/device_wheels.sh, then carry .whl)"
  printf '%s\t%s\t%s\n' imports 1 0 >> "$STATUS"
  pack
  exit 100
fi

# 1. tests
step pytest_cuda 150 "$PYTHON" -m pytest -q -m cuda tests/test_cuda.py -p no:cacheprovider --junitxml="$WORK/pytest_cuda.xml"

# random VGG19 weights for the multi-view recipe's perceptual loss
VGG="$WORK/vgg19_random.pth"
"$PYTHON" - "$VGG" <<'EOF' >> "$WORK/vgg.log" 2>&1
import sys, torch
from posetransfer.losses.perceptual import VGG19Features
net = VGG19Features(layers=["relu5_4"])
torch.save({f"features.{k}": v for k, v in net.features.state_dict().items()}, sys.argv[1])
EOF

# 2. bench train (stdout is the benchmark's JSON)
if [ "$QUICK" = 1 ]; then
  BT=("$PYTHON" -m posetransfer.cli bench train --device "$DEVICE" --steps 1 --warmup 0 --no-conv-peak --json --set train.batch_size=2)
  S_G1=(--set model.g1.base_channels=8); S_G2=(--set model.g2.base_channels=8 --set model.d.base_channels=8)
  S_MV=(--set model.g.base_channels=8 --set model.g.pose_base_channels=8 --set model.d_image.base_channels=8
        --set model.d_pose.base_channels=8 --set data.max_sources=2 --set train.precision=fp32)
else
  BT=("$PYTHON" -m posetransfer.cli bench train --device "$DEVICE" --steps 30 --warmup 5 --json)
  S_G1=(); S_G2=(); S_MV=()
fi
LIM=90; [ "$QUICK" = 1 ] && LIM=600  # a CPU dry run is slow (stage II's random G1 is full size)
step train_market_g1 "$LIM" "${BT[@]}" --config configs/pg2/market/g1_posemaskloss.yaml "${S_G1[@]}"
step train_market_g1_g2_d "$LIM" "${BT[@]}" --config configs/pg2/market/g1_g2_d.yaml \
  --random-init g1=configs/pg2/market/g1_posemaskloss.yaml "${S_G2[@]}"
step train_deepfashion_g1 "$LIM" "${BT[@]}" --config configs/pg2/deepfashion/g1_posemaskloss.yaml "${S_G1[@]}"
step train_deepfashion_multiview "$LIM" "${BT[@]}" --config configs/multiview/deepfashion/g_di_dp_m.yaml \
  --set "loss.vgg_weights=$VGG" --set train.precision=bf16 --set train.channels_last=true "${S_MV[@]}"
for name in train_market_g1 train_market_g1_g2_d train_deepfashion_g1 train_deepfashion_multiview; do
  [ -s "$WORK/$name.out" ] && cp "$WORK/$name.out" "$WORK/$name.json"
done

# 3. bench infer
if [ "$QUICK" = 1 ]; then
  step infer 300 "$PYTHON" -m posetransfer.cli bench infer --device "$DEVICE" --batch 1 --repeats 1 --width 4 --json
else
  step infer 120 "$PYTHON" -m posetransfer.cli bench infer --device "$DEVICE" --batch 64 --repeats 5 --check-bf16 --json
fi
[ -s "$WORK/infer.out" ] && cp "$WORK/infer.out" "$WORK/infer.json"

# 4. a real run: 2 minutes of the Market G1 recipe on synthetic people, device data path
IPS=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['images_per_s'])" "$WORK/train_market_g1.json" 2>/dev/null || echo 200)
ITER=$("$PYTHON" -c "import sys; print(max(100, int(float(sys.argv[1]) * 120 / 16)))" "$IPS")
IDS=300; RUN_SET=()
if [ "$QUICK" = 1 ]; then ITER=3; IDS=8; RUN_SET=(--set model.g1.base_channels=8 --set train.batch_size=4 --set train.eval_batches=1); fi
note "real run: $ITER iterations (bench: $IPS images/s)"
DATA="$WORK/synth-market"
step synth 120 "$PYTHON" -m posetransfer.cli data synth --out "$DATA" --size 128x64 --identities "$IDS" --views 4 --seed 0 --no-progress
if [ -d "$DATA/train" ]; then
  T0=$(date +%s)
  step real_run 200 "$PYTHON" -m posetransfer.cli train configs/pg2/market/g1_posemaskloss.yaml --out "$WORK/run" \
    --set "data.train=$DATA/train" --set "data.test=$DATA/test" --set "train.device=$DEVICE" --set train.data_path=device \
    --set "train.iterations=$ITER" --set "train.checkpoint_every=$ITER" --set train.sample_every=1000000 \
    --set train.log_every=100 "${RUN_SET[@]}" --no-progress
  note "real run: $ITER steps in $(( $(date +%s) - T0 ))s wall (start-up and decoding included)"
fi
# 4b. the multi-view Market (G+D_I+D_P)-M recipe on the same people, device data path then
#     workers (bench train times synthetic in-memory batches, so it has no data path to choose):
#     the wall time of each, start-up included
MV_ITER=150; MV_SET=()
if [ "$QUICK" = 1 ]; then MV_ITER=3; MV_SET=(--set model.g.base_channels=8 --set model.g.pose_base_channels=8
  --set model.d_image.base_channels=8 --set model.d_pose.base_channels=8 --set data.max_sources=3); fi
if [ -d "$DATA/train" ]; then
  for MV_PATH in device workers; do
    T0=$(date +%s)
    step "real_run_multiview_$MV_PATH" 45 "$PYTHON" -m posetransfer.cli train configs/multiview/market/g_di_dp_m.yaml \
      --out "$WORK/run_multiview_$MV_PATH" --set "data.train=$DATA/train" --set "data.test=$DATA/test" \
      --set "train.device=$DEVICE" --set "train.data_path=$MV_PATH" --set "loss.vgg_weights=$VGG" \
      --set "train.iterations=$MV_ITER" --set "train.checkpoint_every=$MV_ITER" --set train.sample_every=1000000 \
      --set train.eval_batches=1 --set train.log_every=50 "${MV_SET[@]}" --no-progress
    note "real run multiview ($MV_PATH data path): $MV_ITER steps in $(( $(date +%s) - T0 ))s wall"
    rm -rf "$WORK/run_multiview_$MV_PATH/checkpoints" 2>/dev/null
  done
fi
# 4c. bench data: the multi-view recipes' batches/s on each data path (no network)
if [ "$QUICK" = 1 ]; then BD=(--batches 2 --identities 8 --set train.batch_size=2)
else BD=(--batches 50 --identities 100 --set train.batch_size=8); fi
step data_market_multiview 45 "$PYTHON" -m posetransfer.cli bench data --config configs/multiview/market/g_di_dp_m.yaml \
  --synth 128x64 --device "$DEVICE" "${BD[@]}" --json
step data_deepfashion_multiview 60 "$PYTHON" -m posetransfer.cli bench data --config configs/multiview/deepfashion/g_di_dp_m.yaml \
  --synth 256x256 --device "$DEVICE" "${BD[@]}" --json
for name in data_market_multiview data_deepfashion_multiview; do
  [ -s "$WORK/$name.out" ] && cp "$WORK/$name.out" "$WORK/$name.json"
done
# keep the run's logs and config, not the data or the weights
rm -rf "$DATA" "$WORK/run/checkpoints" "$VGG" 2>/dev/null

# 5. optional, when time is left: the Market G1 step compiled (inductor)
if [ "$QUICK" != 1 ] && [ "$(left)" -gt 100 ]; then
  step train_market_g1_compiled 100 "${BT[@]}" --config configs/pg2/market/g1_posemaskloss.yaml --set train.compile=true
  [ -s "$WORK/train_market_g1_compiled.out" ] && cp "$WORK/train_market_g1_compiled.out" "$WORK/train_market_g1_compiled.json"
fi

note "done in $(( $(date +%s) - START ))s, $FAILED step(s) failed, $SKIPPED skipped for the time budget"
pack
exit $FAILED
