#!/usr/bin/env bash
# Creates .venv with everything the workflow and the tests need (CPU only, offline-capable).
# Torch comes first, pinned: every later pip call is constrained so nothing pulls CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -c constraints.txt -e ".[test]"
echo "setup: .venv ready"
