#!/usr/bin/env bash
# The exact commands that made the robustified models shipped in brainprobe/assets/weights/,
# and the quality reports quoted in docs/robustify.md.
#
# Adversarial self-distillation (no labels) on crops of the stimulus library's *training* photos,
# at the demo resolution (128 px): l2 eps 1.5, 2-step PGD, batch 16, Adam lr 2e-4, clean weight 1,
# no KL term, seed 0; fp16 safetensors + JSON recipe (with sha256) written to OUT.
# Run from the repository root:  bash scripts/robustify_default.sh [OUT_DIR]
#
# How they were run (2 shared CPU cores, load ~14, no GPU): one thread per process (OpenMP
# threads degrade badly on an oversubscribed machine); the three trainings ran side by side.
# They were run in stages, each resumed from its checkpoint with a larger --time (a resumed run
# continues exactly where it stopped): MobileNetV2 20m -> 32m; EfficientNet-Lite0 20m -> 32m ->
# 50m; EfficientNet-Lite2 25m -> 43m (the later stages ran while the machine was less loaded,
# so they took more steps per minute). Budgets are
# wall-clock, so the step counts depend on the machine's load; each recipe records the steps
# taken, and `--steps N` with the same settings reproduces a run exactly on CPU.
set -euo pipefail
OUT=${1:-brainprobe/assets/weights}
CKPT=${CKPT:-/tmp/brainprobe-robustify-ckpt}
BP=${BP:-.venv/bin/brainprobe}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
common=(--norm l2 --eps 1.5 --pgd-steps 2 --resolution 128 --batch-size 16 --lr 2e-4
        --clean-weight 1 --kl-weight 0 --seed 0 --images library --out "$OUT")
"$BP" robustify mobilenet_v2 --layers features.13 --time 32m "${common[@]}" \
    --checkpoint "$CKPT/mobilenet_v2.ckpt" &
"$BP" robustify efficientnet_lite0 --layers _blocks.10 --time 50m "${common[@]}" \
    --checkpoint "$CKPT/efficientnet_lite0.ckpt" &
"$BP" robustify efficientnet_lite2 --layers _blocks.14 --time 43m "${common[@]}" \
    --checkpoint "$CKPT/efficientnet_lite2.ckpt" &
wait

# Quality reports (held-out images only; 200 library eval crops at 128 px + foolbox's 20 photos).
# With OUT outside the package, point the zoo at it: cp OUT/*.json OUT/*.safetensors $BRAINPROBE_HOME/robust/
for m in mobilenet_v2 efficientnet_lite0 efficientnet_lite2; do
    BRAINPROBE_PROGRESS=0 "$BP" robustify --evaluate "${m}_robust_l2_eps1.5" --eval-l2 0.25,1 \
        --eval-linf 1/255,2/255 --eval-steps 5 --n-crops 200 --json "/tmp/${m}_robust_quality.json" &
done
wait
