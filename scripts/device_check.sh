#!/usr/bin/env bash
# The GPU check of issue 14, for one H100/H200, in under 8 minutes: run from the repository root.
#
#   OUT=/tmp/device-out scripts/device_check.sh        # (PYTHON=... to pick the interpreter)
#
# 1. the CUDA-marked tests (pytest -m cuda: device data path, fast step, compile, inference);
# 2. bench train --device cuda for the Market G1, Market G1+G2+D (random G1), DeepFashion G1
#    (256x256) and multi-view DeepFashion (G+D_I+D_P)-M recipes (random VGG19 weights: no
#    download here; the speed does not depend on the weights), then the Market G1 compiled;
# 3. bench infer --device cuda (G1, G1+G2, multi-view at 128x64 and 256x176);
# 4. a 2-minute real training run of the Market G1 recipe on synthetic people (device data path),
#    its length set from step 2's measured images/s.
# A dry run of the wiring on a machine without a GPU: DEVICE=cpu QUICK=1 scripts/device_check.sh
# (tiny widths and batches, a few steps; the figures mean nothing then).
# Everything goes under $OUT: one JSON per benchmark, a .log per step, summary.txt. Each step has
# its own time limit and a failed step does not stop the others; the exit status is the number
# of failed steps.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-device-out}
mkdir -p "$OUT"
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
START=$(date +%s)
FAILED=0
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"

note() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$SUMMARY"; }

# step NAME LIMIT_SECONDS COMMAND...: stdout to $OUT/NAME.out, stderr to $OUT/NAME.log
step() {
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.out" 2> "$OUT/$name.log"
  local rc=$?
  [ $rc -ne 0 ] && FAILED=$((FAILED + 1))
  note "$name: exit $rc in $(( $(date +%s) - t0 ))s"
  return $rc
}

note "start $(date -u +%FT%TZ), python $PYTHON"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || note "nvidia-smi failed"
"$PYTHON" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')" >> "$SUMMARY" 2>&1

# 1. tests
step pytest_cuda 150 "$PYTHON" -m pytest -q -m cuda tests/test_cuda.py --junitxml="$OUT/pytest_cuda.xml"

# random VGG19 weights for the multi-view recipe's perceptual loss
VGG="$OUT/vgg19_random.pth"
"$PYTHON" - "$VGG" <<'EOF' >> "$OUT/vgg.log" 2>&1
import sys, torch
from posetransfer.losses.perceptual import VGG19Features
net = VGG19Features(layers=["relu5_4"])
torch.save({f"features.{k}": v for k, v in net.features.state_dict().items()}, sys.argv[1])
EOF

# 2. bench train
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
  cp "$OUT/$name.out" "$OUT/$name.json" 2>/dev/null
done

# 3. bench infer
if [ "$QUICK" = 1 ]; then
  step infer 300 "$PYTHON" -m posetransfer.cli bench infer --device "$DEVICE" --batch 1 --repeats 1 --width 4 --json
else
  step infer 120 "$PYTHON" -m posetransfer.cli bench infer --device "$DEVICE" --batch 64 --repeats 5 --check-bf16 --json
fi
cp "$OUT/infer.out" "$OUT/infer.json" 2>/dev/null

# 4. a real run: 2 minutes of the Market G1 recipe on synthetic people, device data path
IPS=$("$PYTHON" -c "import json,sys; print(json.load(open(sys.argv[1]))['images_per_s'])" "$OUT/train_market_g1.json" 2>/dev/null || echo 200)
ITER=$("$PYTHON" -c "import sys; print(max(100, int(float(sys.argv[1]) * 120 / 16)))" "$IPS")
IDS=300; RUN_SET=()
if [ "$QUICK" = 1 ]; then ITER=3; IDS=8; RUN_SET=(--set model.g1.base_channels=8 --set train.batch_size=4 --set train.eval_batches=1); fi
note "real run: $ITER iterations (bench: $IPS images/s)"
DATA="$OUT/synth-market"
step synth 120 "$PYTHON" -m posetransfer.cli data synth --out "$DATA" --size 128x64 --identities "$IDS" --views 4 --seed 0 --no-progress
if [ -d "$DATA/train" ]; then
  T0=$(date +%s)
  step real_run 200 "$PYTHON" -m posetransfer.cli train configs/pg2/market/g1_posemaskloss.yaml --out "$OUT/run" \
    --set "data.train=$DATA/train" --set "data.test=$DATA/test" --set "train.device=$DEVICE" --set train.data_path=device \
    --set "train.iterations=$ITER" --set "train.checkpoint_every=$ITER" --set train.sample_every=1000000 \
    --set train.log_every=100 "${RUN_SET[@]}" --no-progress
  note "real run: $ITER steps in $(( $(date +%s) - T0 ))s wall (start-up and decoding included)"
fi
rm -rf "$DATA" "$OUT/run/checkpoints" 2>/dev/null  # keep the logs and config, not the data or weights

# optional, when time is left: the Market G1 step compiled (inductor)
if [ "$QUICK" != 1 ] && [ $(( $(date +%s) - START )) -lt 360 ]; then
  step train_market_g1_compiled 100 "${BT[@]}" --config configs/pg2/market/g1_posemaskloss.yaml --set train.compile=true
  cp "$OUT/train_market_g1_compiled.out" "$OUT/train_market_g1_compiled.json" 2>/dev/null
fi

rm -f "$VGG"  # 80 MB of random weights
note "done in $(( $(date +%s) - START ))s, $FAILED step(s) failed"
exit $FAILED
