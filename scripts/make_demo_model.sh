#!/usr/bin/env bash
# Regenerate the shipped demonstration model, end to end, from seeds:
#
#   scripts/make_demo_model.sh            # CPU or GPU (DEVICE=auto), ~1 h on 2 CPU cores
#
# 1. two synthetic cohorts with `hcc-response demo-data` (training seed 101, test seed 202 —
#    the test patients are never seen in training or model selection);
# 2. `hcc-response train` with the CPU recipe below (the paper's architecture: ResNet-18
#    pathways, self-attention, two FC layers; shared trunk with phase-specific BatchNorm;
#    64 px input; no ImageNet initialisation), held-out evaluation on the test cohort written
#    into the model description together with the test cohort's Bayes-optimal AUC;
# 3. the SHA-256 beside the file and the evaluation report (JSON, text, ROC PNGs).
#
# Same seeds and options give byte-identical DICOM; training is seeded and deterministic on a
# given machine and thread count (floating-point summation order may differ elsewhere).
# Environment: PY (python), WORK (scratch folder, kept for inspection), DEVICE (auto|cpu|cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${WORK:-$(mktemp -d -t hcc-demo-model-XXXXXX)}
DEVICE=${DEVICE:-auto}
OUT=resources/models/demo-model.safetensors
TRAIN_SEED=101; N_TRAIN=240
TEST_SEED=202; N_TEST=200
MATRIX=96
echo "scratch folder: $WORK" >&2

# A cohort already generated in WORK with the same seed, size and matrix is reused (the output
# would be byte-identical); the stamp is written only after demo-data finished.
generate() {  # folder patients seed
  local stamp="$1/.demo-data-$2-$3-$MATRIX"
  if [[ -f "$stamp" && -f "$1/labels.csv" ]]; then
    echo "reusing $1 (seed $3, $2 patients, matrix $MATRIX)" >&2
  else
    "$PY" -m app demo-data "$1" --patients "$2" --seed "$3" --matrix "$MATRIX"
    touch "$stamp"
  fi
}
generate "$WORK/train" "$N_TRAIN" "$TRAIN_SEED"
generate "$WORK/test" "$N_TEST" "$TEST_SEED"

NOTES="Demonstration model trained on SYNTHETIC PHANTOMS (hcc-response demo-data, training seed \
$TRAIN_SEED, $N_TRAIN patients, ${MATRIX}x$MATRIX matrix); for demonstration and testing of the \
software only, NOT FOR CLINICAL USE: it has never seen a patient's CT and says nothing about real \
treatment response. Held-out metrics are on an unseen synthetic test cohort (seed $TEST_SEED, \
$N_TEST patients) beside that cohort's Bayes-optimal AUC (the AUC of the generator's true response \
probabilities, the ceiling for any model). CPU recipe (2 shared cores, about an hour) instead of \
the paper's: 64 px input instead of 224 (fine texture such as a thin capsule or small necrosis is \
lost), shared trunk, learning rate 1e-3 instead of 1e-4 (no ImageNet initialisation), 4 random \
triplets per patient per epoch, about 1,200 iterations instead of up to 13,000, class-weighted \
loss, selection on validation AUC. Produced by scripts/make_demo_model.sh."

"$PY" -m app train "$WORK/train/labels.csv" --out "$OUT" \
  --backbone resnet18 --shared-trunk --input-size 64 \
  --max-iterations 1200 --batch-size 20 --lr 1e-3 --lr-halve-every 10 \
  --slices-per-patient 4 --val-slices-per-patient 8 --val-fraction 0.2 \
  --early-stop-on auc --patience 8 --class-weighting --seed 0 --device "$DEVICE" \
  --half --name hcc-response-demo --model-version 2026.1 --weights-kind synthetic \
  --test "$WORK/test/labels.csv" --cache-dir "$WORK/cache" --notes "$NOTES" \
  --checkpoint "$WORK/demo-model.ckpt"

(cd resources/models && sha256sum demo-model.safetensors > demo-model.safetensors.sha256)
"$PY" -m app evaluate "$WORK/test/labels.csv" --model "$OUT" --device "$DEVICE" \
  --cache-dir "$WORK/cache" --out-dir resources/models/demo-model-evaluation
