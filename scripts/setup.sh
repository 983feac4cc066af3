#!/usr/bin/env bash
# Create .venv and install cifartui with its test extras. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch/torchvision are pinned to the wheels this machine's pip index holds (CUDA builds; they run on CPU too).
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,tensorboard,analysis]"
# Byte-compile the package as a wheel install would: with PYTHONDONTWRITEBYTECODE set, an editable install
# would otherwise compile every module on each start (the first frame; bench first_frame_bare).
.venv/bin/python -m compileall -q cifartui >/dev/null
