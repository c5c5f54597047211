#!/usr/bin/env bash
# Real-processor comparison (docs/CHECKPOINTS.md): our CLI (--plan none) vs transformers' own
# processors + generate on tiny real-geometry checkpoints. The HF video processors need
# torchvision, which loads only beside torch 2.14.1, so this runs in its own venv (or in
# $VIDEOPRUNE_REAL_PYTHON when set), on transformers 5.23 (the main suite resolves the newest
# supported release, so both ends of the range are checked). It prints one JSON line (no pytest
# summary); a mismatch fails CI. VIDEOPRUNE_SKIP_REAL=1 skips it. $1: seconds this pass may use.
set -uo pipefail
[ "${VIDEOPRUNE_SKIP_REAL:-0}" = "1" ] && { echo "real-processor comparison skipped (VIDEOPRUNE_SKIP_REAL=1)"; exit 0; }
budget=${1:-1500}; [ "$budget" -gt 1500 ] && budget=1500
real_py="${VIDEOPRUNE_REAL_PYTHON:-}"
if [ -z "$real_py" ]; then
  python -m venv .ci/venv-real && real_py=.ci/venv-real/bin/python
  "$real_py" -m pip install -q torch==2.14.1 torchvision==0.29.1 "transformers>=5.23,<5.24" \
    opencv-python-headless "tokenizers>=0.21" "safetensors>=0.4" numpy tqdm pillow || real_py=""
fi
if [ -z "$real_py" ]; then
  echo "real-processor comparison skipped: its torch 2.14.1 + torchvision 0.29.1 venv could not be built"
  exit 0
fi
rc=0; timeout "$budget" "$real_py" tools/real_processor_check.py --json .ci/real_processor_check.json || rc=$?
if [ "$rc" -eq 124 ]; then echo "real-processor comparison stopped at its time cap (not a mismatch)"; exit 0; fi
exit "$rc"
