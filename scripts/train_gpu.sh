#!/usr/bin/env bash
# Train on a GPU host: three runs side by side on one GPU, each for a time budget, then a summary.
# Usage, from the repository root with the project's requirements and a CUDA build of JAX installed
# (see docs/training.md, "Training on a GPU host"):
#   bash scripts/train_gpu.sh DATA [BUDGET_SECONDS] [OUT_DIR]
# DATA is FER2013 (fer2013.csv or the Kaggle train/ and test/ folders). Each run trains for
# BUDGET_SECONDS (default 400; `--time-budget` measures this machine's speed, then fits the epochs
# and the cosine schedule to it):
#   candidates: vgg_wide with AdamW and with SGD+Nesterov (selected on public_test, in their cards);
#   baseline: the seed architecture with a plain Keras recipe (Adam, constant lr, no smoothing).
# Into OUT_DIR (default models/): gpu_*.keras, their model cards gpu_*.json and logs gpu_*.log; the
# summary names the best candidate. Without a GPU it still runs, slowly, on the CPU (a dry run).
set -uo pipefail
case ${1:-} in -h|--help) sed -n '2,12p' "$0" | cut -c3-; exit 0;; esac
data=${1:?usage: bash scripts/train_gpu.sh DATA [BUDGET_SECONDS] [OUT_DIR]}
budget=${2:-400}
out=${3:-models}
python=${PYTHON:-python3}
mkdir -p "$out" || exit 1
export KERAS_BACKEND=${KERAS_BACKEND:-jax} XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
nvidia-smi -L || echo "no GPU found (nvidia-smi): a dry run on the CPU"
"$python" -c "import keras; print('keras', keras.__version__, 'on', keras.backend.backend())" || exit 1
"$python" -c "from fer.data import load_dataset; d = load_dataset('$data'); print({k: len(v) for k, v in d.splits.items()})" || exit 1

common=(--data "$data" --time-budget "$budget" --precision mixed_bfloat16)
train() { local name=$1; shift; "$python" -m fer train "${common[@]}" --out "$out/$name.keras" "$@" > "$out/$name.log" 2>&1; echo "$name exit $?"; }
train gpu_wide_adamw --arch vgg_wide --epochs 1000 --batch-size 128 --lr 0.002 --warmup-epochs 5 --augment-strength 1 &
train gpu_wide_sgd --arch vgg_wide --epochs 1000 --batch-size 128 --optimizer sgd --lr 0.02 --weight-decay 0.0005 \
      --warmup-epochs 5 --augment-strength 1 &
train gpu_seed_baseline --arch seed --epochs 100 --batch-size 64 --optimizer adamw --weight-decay 0 --lr 0.0001 \
      --schedule constant --warmup-epochs 0 --label-smoothing 0 --augment-strength 0.5 &
wait

"$python" - "$out" <<'PY'
import json, sys
from pathlib import Path
acc = {}
for card in sorted(Path(sys.argv[1]).glob("gpu_*.json")):
    c = json.loads(card.read_text())
    m = c["metrics"]["public_test"]
    acc[card.stem] = m["accuracy"]
    print(f"{card.stem}: public_test {m['accuracy']:.4f}, flip TTA {c['metrics']['public_test_tta_flip']['accuracy']:.4f}, "
          f"epochs {c['epochs']} (best {c['best_epoch']}), {c['wall_time_s']:.0f} s")
print("best candidate:", max((k for k in acc if "baseline" not in k), key=acc.get, default=None))
PY
