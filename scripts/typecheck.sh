#!/usr/bin/env bash
# Type-check the annotated packages ([tool.pyright] include in pyproject.toml) in pyright's basic mode,
# against the project's virtual environment; exits non-zero on any error.
#   PYTHON  the interpreter whose packages the checker resolves imports against (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
exec "$python" -m pyright --pythonpath "$python" "$@"
