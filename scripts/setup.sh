#!/usr/bin/env bash
# Creates .venv with everything the workflow and the tests need (CPU only, offline-capable), at the
# exact versions of requirements.lock, so that a new release on the registry changes nothing here.
# torch comes first: pinned to its release, pip takes the CPU build where one lies in its find-links,
# and no later request can pull the CUDA wheels. Refresh the lock with scripts/update_lock.py.
set -euo pipefail
cd "$(dirname "$0")/.."
locked() { grep -m1 -i "^$1==" requirements.lock; }
python3 -m venv .venv
.venv/bin/pip install -q "$(locked pip)"
.venv/bin/pip install -q "$(locked torch)"
.venv/bin/pip install -q -r requirements.lock
.venv/bin/pip install -q --no-deps -e .
.venv/bin/pip check
echo "setup: .venv ready ($(.venv/bin/pip freeze --all | wc -l) distributions, as locked in requirements.lock)"
