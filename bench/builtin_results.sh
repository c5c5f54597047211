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
# Environment: PY (python), MODEL (builtin), WEIGHTING (matched table: linear), JOBS, and the sizes
# N_UNPRUNED (or N_F16 N_F4 N_F32) N_MATCHED N_NOMINAL N_ABLATIONS N_FIRING (questions; 0 skips a job). Jobs start in
# priority order: unpruned 16 frames, matched, SharpV firing, ablations, 4/32 frames, nominal.
set -euo pipefail
OUT=${1:?usage: bench/builtin_results.sh OUT_DIR}
PY=${PY:-python}; MODEL=${MODEL:-builtin}; JOBS=${JOBS:-2}; WEIGHTING=${WEIGHTING:-linear}
N_UNPRUNED=${N_UNPRUNED:-500}; N_MATCHED=${N_MATCHED:-500}; N_NOMINAL=${N_NOMINAL:-500}
N_ABLATIONS=${N_ABLATIONS:-500}; N_FIRING=${N_FIRING:-500}
N_F16=${N_F16:-$N_UNPRUNED}; N_F4=${N_F4:-$N_UNPRUNED}; N_F32=${N_F32:-$N_UNPRUNED}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export OMP_NUM_THREADS=1
ACC="$PY bench/accuracy.py --model $MODEL"
export TQDM_MININTERVAL=${TQDM_MININTERVAL:-30}   # progress lines in the .err files, twice a minute

# method subsets of roughly equal cost (every registered method appears in exactly one)
M1=sharp,fastv,feather,pdrop,dycoke,streamingllm,sharpv_memory,random
M2=hieravid,hieravid_merge,holitom,prunevid,framefusion,uniform
M3=sharpv,divprune,downsample,prumerge,prumerge_plus,visionzip
# ShaRP Table 5 analogue (PosC only, +SegM, +RegD, SegM+RegD, all; "original" = FastV at the same layer)
# at 15% and 10%; SharpV's own rows at matched budgets are the matched table's sharpv@eq rows
ABL_A=(
  "sharp:segm=0,regd=0,retention=0.15" "sharp:regd=0,retention=0.15" "sharp:segm=0,retention=0.15"
  "sharp:posc=0,retention=0.15" "sharp:retention=0.15" "fastv:layer=1,retention=0.15"
  "sharp:segm=0,regd=0,retention=0.1" "sharp:regd=0,retention=0.1" "sharp:segm=0,retention=0.1"
  "sharp:posc=0,retention=0.1" "sharp:retention=0.1" "fastv:layer=1,retention=0.1")
# HieraVid Table 4 analogue (layer schedule, segmentation, DPP) at 20% and 10%; SharpV adaptive /
# manual / + memory; ShaRP Table 3's chains
ABL_B=(
  "hieravid:retention=0.2" "hieravid:retention=0.2,schedule=false" "hieravid:retention=0.2,segment=false"
  "hieravid:retention=0.2,dpp=false"
  "hieravid:retention=0.1" "hieravid:retention=0.1,schedule=false" "hieravid:retention=0.1,segment=false"
  "hieravid:retention=0.1,dpp=false"
  "sharpv" "sharpv:mode=manual" "sharpv+sharpv_memory"
  "visionzip:retention=0.2+sharp:retention=0.124" "hieravid_merge+sharp:retention=0.124")

q() { printf '%q ' "$@"; }
jobs_file="$OUT/jobs.txt"; : > "$jobs_file"
# one job per line, in priority order (JOBS run at once); a size of 0 skips the job
job() { local name=$1 n=$2; shift 2; [ "$n" -gt 0 ] || return 0
  echo "cd $(q "$PWD") && /usr/bin/time -f '%e s wall' $* > $(q "$OUT/$name.json") 2> $(q "$OUT/$name.err")" >> "$jobs_file"; }
MATCHED="--matched-flops --weighting $WEIGHTING --n $N_MATCHED"
job unpruned_f16 "$N_F16" "$ACC --methods none --frames 16 --n $N_F16"
job matched_1 "$N_MATCHED" "$ACC $MATCHED --methods $M1"
job matched_2 "$N_MATCHED" "$ACC $MATCHED --methods $M2"
job matched_3 "$N_MATCHED" "$ACC $MATCHED --methods $M3"
job sharpv_firing "$N_FIRING" "$PY bench/sharpv_firing.py --model $MODEL --n $N_FIRING --m 0.2"
job ablations_a "$N_ABLATIONS" "$ACC --n $N_ABLATIONS --methods none --plans $(q "${ABL_A[@]}")"
job ablations_b "$N_ABLATIONS" "$ACC --n $N_ABLATIONS --methods none --plans $(q "${ABL_B[@]}")"
job unpruned_f4 "$N_F4" "$ACC --methods none --frames 4 --n $N_F4"
job unpruned_f32 "$N_F32" "$ACC --methods none --frames 32 --n $N_F32"
job nominal_1 "$N_NOMINAL" "$ACC --n $N_NOMINAL --methods $M1"
job nominal_2 "$N_NOMINAL" "$ACC --n $N_NOMINAL --methods $M2"
job nominal_3 "$N_NOMINAL" "$ACC --n $N_NOMINAL --methods $M3"

t0=$(date +%s)
tr '\n' '\0' < "$jobs_file" | xargs -0 -P "$JOBS" -I{} bash -c '{}' || echo "some job failed: see $OUT/*.err" >&2
echo "all jobs: $(( $(date +%s) - t0 )) s wall" | tee "$OUT/TIME"

merge() { local out=$1; shift; local have=(); for f in "$@"; do [ -s "$f" ] && have+=("$f"); done
  [ ${#have[@]} -gt 0 ] && $PY bench/accuracy.py --from-json "${have[@]}" > "$out"; }
merge "$OUT/matched.json" "$OUT"/matched_{1,2,3}.json || true
merge "$OUT/nominal.json" "$OUT"/nominal_{1,2,3}.json || true
merge "$OUT/ablations.json" "$OUT"/ablations_{a,b}.json && $PY bench/accuracy_table.py "$OUT/ablations.json" > "$OUT/ablations.md" || true
for f in "$OUT"/unpruned_f{16,4,32}.json; do [ -s "$f" ] && $PY bench/accuracy_table.py "$f"; done > "$OUT/unpruned.md"
if [ "${WRITE_DOCS:-0}" = 1 ]; then
  [ -s "$OUT/matched.json" ] && $PY bench/accuracy.py --from-json "$OUT/matched.json" --write-docs > /dev/null
  [ -s "$OUT/nominal.json" ] && $PY bench/accuracy.py --from-json "$OUT/nominal.json" --write-docs > /dev/null
fi
echo "done: $OUT"
