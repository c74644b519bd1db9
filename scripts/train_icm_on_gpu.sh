#!/usr/bin/env bash
# The GPU part of the icm-* recipe (src/icm_privacy/icm_recipe.py, docs/icm_training.md): the last base
# stage, then the fine-tunes at once on the one GPU (each is small: running them side by side keeps the
# GPU busy while every process cuts its crops on its own CPU core).
#   bash scripts/train_icm_on_gpu.sh FOLDER COCO_TRAIN_DIR [FINE_TUNE...]   (default: every fine-tune)
# FOLDER holds the finished first base (base.pth.tar); every stage writes its checkpoint, logs and resume
# state there, and one that was stopped resumes when the script runs again. Needs CUDA torch, compressai,
# pycocotools and the package on PYTHONPATH (src).
set -euo pipefail
folder=$1 data=$2
shift 2
from_recipe() { python3 -c "from icm_privacy.icm_recipe import BASES, FINE_TUNES; print($1)"; }
last_base=$(from_recipe "BASES[-1]")
if (($#)); then fine_tunes=("$@"); else read -ra fine_tunes <<< "$(from_recipe "*FINE_TUNES")"; fi
recipe() {
    python3 -m icm_privacy.icm_recipe --folder "$folder" --images "$data/images" \
        --annotations "$data/instances.json" --device cuda --threads 2 "$@"
}
recipe --stage "$last_base"
pids=()
for stage in "${fine_tunes[@]}"; do
    recipe --stage "$stage" > "$folder/$stage.out" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
