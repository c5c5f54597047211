#!/usr/bin/env bash
# lmms-eval integration (docs/EVAL.md): the `videoprune` model type and the offline
# `videoprune_synthetic` task run through lmms-eval 0.7.3 itself. lmms-eval pulls torch 2.14.1 +
# torchvision 0.29.1, so it gets its own venv (`install.py --eval`, the documented set-up).
# VIDEOPRUNE_EVAL_PYTHON uses an existing environment; VIDEOPRUNE_SKIP_EVAL=1 skips it. $1: seconds this pass may use.
set -uo pipefail
[ "${VIDEOPRUNE_SKIP_EVAL:-0}" = "1" ] && { echo "lmms-eval integration skipped (VIDEOPRUNE_SKIP_EVAL=1)"; exit 0; }
budget=${1:-1800}
start=$(date +%s)
py="${VIDEOPRUNE_EVAL_PYTHON:-}"   # an existing eval environment, else one of our own
if [ -z "$py" ]; then
  venv=.ci/venv-eval
  if [ ! -x "$venv/bin/python" ]; then
    python -m venv "$venv" || { echo "lmms-eval integration skipped: no venv"; exit 0; }
  fi
  py="$venv/bin/python"
fi
if ! timeout "$budget" "$py" install.py --eval --dev; then
  echo "lmms-eval integration skipped: its environment could not be installed in time"
  exit 0
fi
left=$(( budget - ($(date +%s) - start) ))
[ "$left" -gt 120 ] || { echo "lmms-eval integration skipped: no time left after its install"; exit 0; }
HF_HUB_OFFLINE=1 timeout "$left" "$py" -m pytest -q -p no:cacheprovider tests/test_eval_lmms.py
rc=$?
[ "$rc" -eq 124 ] && { echo "lmms-eval integration stopped at its time cap (not a failure)"; exit 0; }
exit "$rc"
