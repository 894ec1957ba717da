#!/bin/bash
# On a lent GPU machine (the workplace's device tool), from the repository root: one denoiser stage from the model
# in INIT, for as many steps as fit BUDGET seconds. Stage 12 of the shipped model ran as this with the defaults.
#
# Here first (the device has no PyPI; its upload is capped at 64 MiB):
#   printf '/.gpu/\n/.whl/\n' >> .git/info/exclude
#   .venv/bin/python scripts/gpu/prep_minilm.py
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 importlib_metadata==10.2.0
# then the device tool's run with carry [".gpu", ".whl"] and timeout_s BUDGET + 70: `bash scripts/gpu/run.sh`.
# What comes back in $OUT: the EMA UNet in 15 MB parts (cat unet.part* > diffusion_pytorch_model.safetensors),
# the command, the logs. Assemble it here with glassdiff/weights' other folders and run glassdiff.train.ship.
set -u
T0=$(date +%s)
: "${OUT:=/tmp/out}" "${DEVICE:=cuda}" "${INIT:=glassdiff/weights}" "${SEED:=12}" "${CAPTIONS:=150000}"
: "${BATCH:=512}" "${LR:=5e-4}" "${BUDGET:=520}" "${PY:=python3}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
elapsed() { echo $(( $(date +%s) - T0 )); }
mkdir -p "$OUT" runs
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
$PY scripts/gpu/unpack_minilm.py /tmp/site || exit 1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
ARGS="--vae glassdiff/weights/vae --init $INIT --coordinates --caption-colors 0.4 --caption-cells 0.7
 --data-chunks 16 --batch $BATCH --lr $LR --warmup 200 --min-snr-gamma 0 --decay-to 0.1 --seed $SEED --device $DEVICE
 --sample-every 1000000 --checkpoint-every 500"
train() { $PY -m glassdiff.train denoiser $ARGS "$@"; }
# 1. the step time at this batch, on a small cache
train --out runs/timing --captions "${TIMING_CAPTIONS:-2000}" --steps 60 > "$OUT/timing.log" 2>&1 || { tail -30 "$OUT/timing.log"; exit 1; }
STEP_S=$($PY -c "import json; r=[json.loads(l) for l in open('runs/timing/log.jsonl')]
print((r[-1]['elapsed_s'] - r[19]['elapsed_s']) / (len(r) - 20))")
echo "step time ${STEP_S}s at batch $BATCH ($(elapsed)s in)"
# 2. the cache of the full caption set
train --out runs/gpu --captions "$CAPTIONS" --steps 0 > "$OUT/cache.log" 2>&1 || { tail -30 "$OUT/cache.log"; exit 1; }
echo "cache built ($(elapsed)s in)"
# 3. the steps that fit: stage 12's steps took 1.16x the timing run's (checkpoints, logging), so allow 1.25x
LEFT=$(( BUDGET - $(elapsed) - 25 ))
STEPS=$($PY -c "print(max(100, int($LEFT / $STEP_S / 1.25) // 100 * 100))")
echo "glassdiff train denoiser --out runs/gpu --captions $CAPTIONS --steps $STEPS" $ARGS | tee "$OUT/command.txt"
timeout $(( LEFT + 40 )) $PY -m glassdiff.train denoiser $ARGS --out runs/gpu --captions "$CAPTIONS" --steps "$STEPS" \
  > "$OUT/train.log" 2>&1
echo "trainer exit $? ($(elapsed)s in)"
# 4. the EMA UNet (fp32) in parts under the device tool's 16 MiB per file, and the run's record
WEIGHTS=runs/gpu/model/unet/diffusion_pytorch_model.safetensors
[ -f "$WEIGHTS" ] && split -b 15M -d "$WEIGHTS" "$OUT/unet.part" && sha256sum "$WEIGHTS"
tail -1 runs/gpu/log.jsonl
# the device tool brings back 8 files at most: the logs go in one archive
tar czf "$OUT/record.tgz" runs/gpu/log.jsonl runs/gpu/loss.png runs/gpu/model/unet/config.json \
  -C "$OUT" timing.log cache.log 2>/dev/null && rm "$OUT/timing.log" "$OUT/cache.log"
ls -la "$OUT"; echo "done ($(elapsed)s)"
