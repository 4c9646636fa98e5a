#!/usr/bin/env bash
# One GPU training session on the `device` machine (JAX, no TensorFlow). Prepare here first with
# `bash scripts/device_pack.sh`, then, from the agent tools:
#   run(command="bash scripts/device_train.sh 400", carry=[".whl", ".data"], timeout_s=540)
# It trains three runs side by side on the one GPU, each for BUDGET seconds (default 400, timed by
# `--time-budget`, which fits the epochs and the cosine schedule to the measured speed):
#   flagship candidates: vgg_wide with AdamW and with SGD+Nesterov (selection: public_test, in card);
#   baseline: the seed architecture with a plain Keras recipe (Adam, constant lr, no smoothing).
# Back under $OUT: every run's card and log, and the best candidate's .keras in one tar.gz cut in
# 15 MB parts (the tool returns 8 files of at most 16 MiB):
#   cat parts* | tar -xz  ->  models/gpu_*.json, models/gpu_*.keras, logs
set -uo pipefail
budget=${1:-400}
out=${OUT:-/tmp/out}; mkdir -p "$out"
[ -n "${SKIP_WHEELS:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1 \
       FER_CACHE_DIR=/tmp/fercache TF_CPP_MIN_LOG_LEVEL=2
root=${DATA_ROOT:-/tmp/data}; data=$root/fer2013   # DATA_ROOT, DATA_TAR: for a dry run on a small tar
mkdir -p "$root" && tar -xzf "${DATA_TAR:-.data/fer2013.tar.gz}" -C "$root" || exit 1
nvidia-smi -L || echo 'no GPU: a dry run'
python3 -c "import keras, jax; print('keras', keras.__version__, 'jax', jax.__version__, jax.devices())" || exit 1
python3 -c "from fer.data import load_dataset; d = load_dataset('$data'); print({k: len(v) for k, v in d.splits.items()})" || exit 1

common=(--data "$data" --time-budget "$budget" --precision mixed_bfloat16)
train() { local name=$1; shift; python3 -m fer train "${common[@]}" --out "models/$name.keras" "$@" > "$out/$name.log" 2>&1; echo "$name exit $?"; }
train gpu_wide_adamw --arch vgg_wide --epochs 1000 --batch-size 128 --lr 0.002 --warmup-epochs 5 --augment-strength 1 &
train gpu_wide_sgd --arch vgg_wide --epochs 1000 --batch-size 128 --optimizer sgd --lr 0.02 --weight-decay 0.0005 \
      --warmup-epochs 5 --augment-strength 1 &
train gpu_seed_baseline --arch seed --epochs 100 --batch-size 64 --optimizer adamw --weight-decay 0 --lr 0.0001 \
      --schedule constant --warmup-epochs 0 --label-smoothing 0 --augment-strength 0.5 &
wait

python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
acc = {}
for card in sorted(Path("models").glob("gpu_*.json")):
    c = json.loads(card.read_text())
    m = c["metrics"]["public_test"]
    acc[card.stem] = m["accuracy"]
    print(f"{card.stem}: public_test {m['accuracy']:.4f}, flip TTA {c['metrics']['public_test_tta_flip']['accuracy']:.4f}, "
          f"epochs {c['epochs']} (best {c['best_epoch']}), {c['wall_time_s']:.0f} s")
flagship = max((k for k in acc if "baseline" not in k), key=acc.get, default=None)
print("best candidate:", flagship)
(out / "pack.txt").write_text("\n".join([f"models/{k}.json" for k in acc] +
                                        ([f"models/{flagship}.keras"] if flagship else [])) + "\n")
PY
tar -czf /tmp/gpu_runs.tar.gz -T "$out/pack.txt" -C "$out" $(cd "$out" && ls *.log) 2>&1 | tail -2
split -b 15M /tmp/gpu_runs.tar.gz "$out/gpu_runs.tar.gz.part-"
ls -la "$out"
