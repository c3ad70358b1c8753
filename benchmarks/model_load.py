"""First load of the default model (GGUF de-quantized and cached) vs later loads (cached safetensors).

    python benchmarks/model_load.py

Uses a temporary STEERLAB_HOME so the first load really converts; prints JSON with both times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

SNIPPET = (
    "import time; t=time.perf_counter(); from steerlab.models.loader import load_model; "
    "load_model('default'); print(time.perf_counter()-t)"
)


def timed_load(home: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", SNIPPET],
        env={**os.environ, "STEERLAB_HOME": home},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        first = timed_load(home)
        cached = [timed_load(home) for _ in range(3)]
    best = min(cached)
    print(
        json.dumps(
            {"first_load_s": round(first, 2), "cached_load_s": round(best, 2), "speedup": round(first / best, 1)},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
