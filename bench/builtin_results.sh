#!/usr/bin/env bash
# Every accuracy figure docs/RESULTS.md quotes for the built-in model, in one run (issue 18):
#   unpruned at 16/4/32 frames, the matched-FLOPs table (every method at equivalent retention
#   0.25/0.15/0.10), the nominal-retention table, the paper ablations (ShaRP Table 5 analogue,
#   SharpV, HieraVid Table 4, ShaRP Table 3 chains) and Memory SharpV's firing rate at M 0.2.
#
#   bash bench/builtin_results.sh OUT_DIR            # 500 questions everywhere
#   N_MATCHED=300 N_ABLATIONS=300 bash bench/builtin_results.sh OUT_DIR
#   WRITE_DOCS=1 bash bench/builtin_results.sh OUT_DIR   # then rewrite RESULTS' matched + nominal blocks
#
# Jobs run JOBS at a time (default 2), each on one thread; method subsets of one table run as
# separate jobs over the SAME questions and are merged with `bench/accuracy.py --from-json`.
# Environment: PY (python), MODEL (builtin), WEIGHTING (matched table: linear), JOBS, N_* sizes.
set -euo pipefail
OUT=${1:?usage: bench/builtin_results.sh OUT_DIR}
PY=${PY:-python}; MODEL=${MODEL:-builtin}; JOBS=${JOBS:-2}; WEIGHTING=${WEIGHTING:-linear}
N_UNPRUNED=${N_UNPRUNED:-500}; N_MATCHED=${N_MATCHED:-500}; N_NOMINAL=${N_NOMINAL:-500}
N_ABLATIONS=${N_ABLATIONS:-500}; N_FIRING=${N_FIRING:-500}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export OMP_NUM_THREADS=1
ACC="$PY bench/accuracy.py --model $MODEL --no-progress"

# method subsets of roughly equal cost (every registered method appears in exactly one)
M1=sharp,fastv,feather,pdrop,dycoke,streamingllm,sharpv_memory,random
M2=hieravid,hieravid_merge,holitom,prunevid,framefusion,uniform
M3=sharpv,divprune,downsample,prumerge,prumerge_plus,visionzip
ABL_A=(
  "sharp:segm=0,regd=0,retention=0.25" "sharp:regd=0,retention=0.25" "sharp:segm=0,retention=0.25"
  "sharp:posc=0,retention=0.25" "sharp:retention=0.25" "fastv:layer=1,retention=0.25" "sharpv:target_retention=0.25"
  "sharp:segm=0,regd=0,retention=0.15" "sharp:regd=0,retention=0.15" "sharp:segm=0,retention=0.15"
  "sharp:posc=0,retention=0.15" "sharp:retention=0.15" "fastv:layer=1,retention=0.15" "sharpv:target_retention=0.15"
  "sharp:segm=0,regd=0,retention=0.1" "sharp:regd=0,retention=0.1" "sharp:segm=0,retention=0.1"
  "sharp:posc=0,retention=0.1" "sharp:retention=0.1" "fastv:layer=1,retention=0.1" "sharpv:target_retention=0.1")
ABL_B=(
  "hieravid:retention=0.3" "hieravid:retention=0.3,schedule=false" "hieravid:retention=0.3,segment=false"
  "hieravid:retention=0.3,dpp=false"
  "hieravid:retention=0.2" "hieravid:retention=0.2,schedule=false" "hieravid:retention=0.2,segment=false"
  "hieravid:retention=0.2,dpp=false"
  "hieravid:retention=0.1" "hieravid:retention=0.1,schedule=false" "hieravid:retention=0.1,segment=false"
  "hieravid:retention=0.1,dpp=false"
  "sharpv" "sharpv:mode=manual" "sharpv+sharpv_memory"
  "visionzip:retention=0.2+sharp:retention=0.124" "hieravid_merge+sharp:retention=0.124")

q() { printf '%q ' "$@"; }
jobs_file="$OUT/jobs.txt"; : > "$jobs_file"
job() { local name=$1; shift; echo "cd $(q "$PWD") && /usr/bin/time -f '%e s wall' $* > $(q "$OUT/$name.json") 2> $(q "$OUT/$name.err")" >> "$jobs_file"; }
MATCHED="--matched-flops --weighting $WEIGHTING --n $N_MATCHED"
job matched_1 "$ACC $MATCHED --methods $M1"
job matched_2 "$ACC $MATCHED --methods $M2"
job matched_3 "$ACC $MATCHED --methods $M3"
job ablations_a "$ACC --n $N_ABLATIONS --methods none --plans $(q "${ABL_A[@]}")"
job ablations_b "$ACC --n $N_ABLATIONS --methods none --plans $(q "${ABL_B[@]}")"
job unpruned_f16 "$ACC --methods none --frames 16 --n $N_UNPRUNED"
job unpruned_f4 "$ACC --methods none --frames 4 --n $N_UNPRUNED"
job unpruned_f32 "$ACC --methods none --frames 32 --n $N_UNPRUNED"
job sharpv_firing "$PY bench/sharpv_firing.py --model $MODEL --n $N_FIRING --m 0.2 --no-progress"
job nominal_1 "$ACC --n $N_NOMINAL --methods $M1"
job nominal_2 "$ACC --n $N_NOMINAL --methods $M2"
job nominal_3 "$ACC --n $N_NOMINAL --methods $M3"

t0=$(date +%s)
tr '\n' '\0' < "$jobs_file" | xargs -0 -P "$JOBS" -I{} bash -c '{}' || echo "some job failed: see $OUT/*.err" >&2
echo "all jobs: $(( $(date +%s) - t0 )) s wall" | tee "$OUT/TIME"

$PY bench/accuracy.py --from-json "$OUT"/matched_{1,2,3}.json > "$OUT/matched.json"
$PY bench/accuracy.py --from-json "$OUT"/nominal_{1,2,3}.json > "$OUT/nominal.json"
$PY bench/accuracy.py --from-json "$OUT"/ablations_{a,b}.json > "$OUT/ablations.json"
$PY bench/accuracy_table.py "$OUT/ablations.json" > "$OUT/ablations.md"
$PY bench/accuracy_table.py "$OUT"/unpruned_f{16,4,32}.json > "$OUT/unpruned.md"
if [ "${WRITE_DOCS:-0}" = 1 ]; then
  $PY bench/accuracy.py --from-json "$OUT/matched.json" --write-docs > /dev/null
  $PY bench/accuracy.py --from-json "$OUT/nominal.json" --write-docs > /dev/null
fi
echo "done: $OUT"
