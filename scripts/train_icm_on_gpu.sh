#!/usr/bin/env bash
# The GPU part of the icm-* recipe (src/icm_privacy/icm_recipe.py, docs/icm_training.md): every base stage
# not done yet, one after another, then the fine-tunes at once on the one GPU (each is small: running them
# side by side keeps the GPU busy while every process cuts its crops on its own CPU core).
#   bash scripts/train_icm_on_gpu.sh FOLDER DATASETS_DIR DETECTOR [FINE_TUNE...]   (default: every fine-tune)
# DATASETS_DIR holds coco-train and coco-train2017 (../shared/datasets here), DETECTOR is the YOLOv5n
# checkpoint of the task objective. Every stage writes its checkpoint, logs and resume state in FOLDER, and
# one that was stopped resumes when the script runs again; finished stages are skipped. Needs CUDA torch,
# compressai, pycocotools, scipy and the package on PYTHONPATH (src).
set -euo pipefail
folder=$1 datasets=$2 detector=$3
shift 3
from_recipe() { python3 -c "from icm_privacy.icm_recipe import BASES, FINE_TUNES; print($1)"; }
read -ra bases <<< "$(from_recipe "*BASES")"
if (($#)); then fine_tunes=("$@"); else read -ra fine_tunes <<< "$(from_recipe "*FINE_TUNES")"; fi
recipe() {
    python3 -m icm_privacy.icm_recipe --folder "$folder" --datasets "$datasets" --detector "$detector" \
        --device cuda --threads 2 "$@"
}
for base in "${bases[@]}"; do recipe --stage "$base"; done
pids=()
for stage in "${fine_tunes[@]}"; do
    recipe --stage "$stage" > "$folder/$stage.out" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
