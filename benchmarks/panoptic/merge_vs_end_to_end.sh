#!/usr/bin/env bash
# Panoptic FPN end to end against a semantic + an instance run merged (docs/results.md, "Panoptic").
# Usage: bash benchmarks/panoptic/merge_vs_end_to_end.sh [OUT]   (from the repository root; about 7 min on 2 cores)
set -euo pipefail
S=${SEGLAB:-.venv/bin/seglab}
R=${1:-runs/merge_vs_e2e}
mkdir -p "$R"
$S demo --task panoptic --out "$R/demo"                       # data + Panoptic FPN, end to end
D=$R/demo/data_panoptic
$S data convert panoptic-to-instance "$D" --out "$R/inst_data"
$S train --data "$D" --model unet --model-opt base_channels=16 --crop-size 128 --set data.scale=[0.75,1.25] \
  --set data.color_jitter=0.1 --workers 0 --epochs 15 --batch-size 8 --lr 0.004 --optimizer adamw \
  --schedule cosine --warmup-epochs 0.5 --precision bf16 --out "$R/sem"
$S train --data "$R/inst_data" --model maskrcnn_resnet18_fpn --model-opt min_size=128 --model-opt max_size=128 \
  --crop-size 128 --set data.scale=[0.75,1.25] --set data.color_jitter=0.1 --workers 0 --epochs 6 --batch-size 8 \
  --lr 0.001 --optimizer adamw --weight-decay 0.05 --schedule cosine --warmup-epochs 0.5 --precision bf16 \
  --clip-grad 10 --set train.eval_every=3 --out "$R/inst"
$S merge "$R/sem" "$R/inst" --out "$R/merged.pt"
$S evaluate "$R/merged.pt" --data "$D" --json "$R/merged.json"
$S evaluate "$R/demo/run_panoptic" --data "$D" --json "$R/end_to_end.json"
