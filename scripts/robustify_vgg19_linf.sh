#!/usr/bin/env bash
# A second robustify recipe: an l-inf robust copy of the offline VGG-19 trunk (family vgg, which no
# candidate of the demo belongs to), meant as the demo's robust brain, so that the brain's recipe
# (l-inf, VGG, other layers) differs from every robust candidate's (l2 eps 1.5, MobileNetV2 /
# EfficientNet-Lite). NOT SHIPPED YET: on the shared 2-core machine of session 3 no run reached a
# useful robustness in the time there was (docs/robustify.md, "A second recipe: l-inf VGG-19").
#
# Measured step times there (one thread, nice 15, machine shared with ~5 other sessions, load 8-10):
#   3 layers (block2_relu2, block4_relu2, block5_relu4), 128 px, batch 16, 2-step PGD: ~100 s/step
#   same, 64 px: ~25-30 s/step; with 1-step PGD under heavier load: 40-120 s/step
#   block4_relu2 only, 64 px, batch 8, 1-step PGD: ~10 s/step; block2_relu2 only: ~4-7 s/step
# A useful run (ratio >= 2 at linf 1/255 on held-out photos) needs, by the MobileNetV2 runs'
# dose-response, some 600-1000 steps of batch 16 at the distilled layers the brain reads: about
# 1-3 days of this shared CPU at 128 px, or minutes on a GPU (--device cuda).
#
# Run from the repository root:  bash scripts/robustify_vgg19_linf.sh [OUT_DIR] [DEVICE]
set -euo pipefail
OUT=${1:-brainprobe/assets/weights}
DEVICE=${2:-cpu}
CKPT=${CKPT:-/tmp/brainprobe-robustify-ckpt}
BP=${BP:-.venv/bin/brainprobe}
# Adam: VGG has no BatchNorm and its feature scales are unknown to a fixed SGD rate; Adam's step
# does not depend on the gradient's scale (session 3 pilots used 1e-4 at 64 px).
"$BP" robustify vgg19 --layers block2_relu2,block4_relu2,block5_relu4 --norm linf --eps 2/255 \
    --pgd-steps 2 --resolution 128 --batch-size 16 --optimizer adam --lr 1e-4 --clean-weight 1 \
    --kl-weight 0 --seed 1 --images library --steps 1000 --device "$DEVICE" --out "$OUT" \
    --checkpoint "$CKPT/vgg19_linf.ckpt"
# Quality at the layers the brain reads (held-out crops; no classifier, so readout R^2 stands for
# clean agreement):
for layer in block4_relu2 block5_relu4; do
    BRAINPROBE_PROGRESS=0 "$BP" robustify --evaluate vgg19_robust_linf_eps2 --eval-layer "$layer" \
        --eval-l2 0.25 --eval-linf 1/255 --eval-steps 5 --n-crops 200 --device "$DEVICE" \
        --json "/tmp/vgg19_robust_linf_eps2_${layer}_quality.json"
done
