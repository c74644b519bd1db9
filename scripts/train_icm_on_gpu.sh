#!/usr/bin/env bash
# The GPU part of the icm-* recipe (src/icm_privacy/icm_recipe.py, docs/icm_training.md): base-2, then the
# six fine-tunes at once on the one GPU (each is small: running them side by side keeps the GPU busy while
# every process cuts its crops on its own CPU core).
#   bash scripts/train_icm_on_gpu.sh FOLDER COCO_TRAIN_DIR [FINE_TUNE...]   (default: all fine-tunes)
# FOLDER holds the finished base (base.pth.tar); every stage writes its checkpoint, logs and resume state
# there, and one that was stopped resumes when the script runs again. Needs CUDA torch, compressai,
# pycocotools and the package on PYTHONPATH (src).
set -euo pipefail
folder=$1 data=$2
shift 2
fine_tunes=("${@:-icm-mse-0 icm-mse-1 icm-mse-2 icm-mse-4 icm-edge-0 icm-edge-1 icm-edge-2 icm-edge-3}")
recipe() {
    python3 -m icm_privacy.icm_recipe --folder "$folder" --images "$data/images" \
        --annotations "$data/instances.json" --device cuda --threads 2 "$@"
}
recipe --stage base-2
pids=()
for stage in ${fine_tunes[*]}; do
    recipe --stage "$stage" > "$folder/$stage.out" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
