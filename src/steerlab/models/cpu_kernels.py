"""Our CPU kernels (``csrc/*.cpp``: packed-weight products, RMSNorm), compiled once and loaded as torch ops.

They are compiled with the system's C++ compiler on first use (~15 s) and cached like PyTorch's own
extensions (``$TORCH_EXTENSIONS_DIR``, else ``~/.cache/torch_extensions``), keyed by their source, the
torch version and the flags. Without a compiler, on a CPU without AVX-512, or with
``STEERLAB_PACKED_WEIGHTS=0``, :func:`kernels_available` is False and callers keep PyTorch's own ops.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

from steerlab.settings import get_settings

log = logging.getLogger("steerlab.models")

SOURCES = sorted((Path(__file__).with_name("csrc")).glob("*.cpp"))
CPU_FLAGS = ("avx512f", "avx512bw")
COMPILE_FLAGS = ["-O3", "-mavx512f", "-mavx512bw", "-mfma", "-fopenmp", "-shared", "-fPIC", "-std=c++17", "-w"]

_lock = threading.Lock()
_loaded: bool | None = None


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _library_path() -> Path:
    """The compiled kernel for this source, this torch and these flags (a change to any builds anew)."""
    key = hashlib.sha256(
        b"".join(p.read_bytes() for p in SOURCES) + torch.__version__.encode() + " ".join(COMPILE_FLAGS).encode()
    )
    base = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions")
    return base / f"steerlab_cpu_kernels-{key.hexdigest()[:16]}.so"


def _compile(compiler: str, target: Path) -> None:
    from torch.utils.cpp_extension import include_paths

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so")
    os.close(fd)
    torch_lib = Path(torch.__file__).parent / "lib"
    command = [
        compiler,
        *COMPILE_FLAGS,
        f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
        *(f"-I{p}" for p in include_paths()),
        *map(str, SOURCES),
        f"-L{torch_lib}",
        "-lc10",
        "-ltorch_cpu",
        "-o",
        tmp,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {done.stderr.strip().splitlines()[-1] if done.stderr else ''}")
        os.replace(tmp, target)  # atomic: a process loading the library never sees half of it
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def kernels_available() -> bool:
    """Load (building once if needed) the kernels; False, with the reason logged, if they cannot be."""
    global _loaded
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is None:
            _loaded = _load()
    return _loaded


def _load() -> bool:
    if not get_settings().packed_weights:
        return False
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        log.info("CPU kernels: need Linux on x86-64; PyTorch's own ops are used")
        return False
    missing = [flag for flag in CPU_FLAGS if flag not in _cpu_flags()]
    if missing:
        log.info("CPU kernels: this CPU lacks %s; PyTorch's own ops are used", ", ".join(missing))
        return False
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    path = _library_path()
    try:
        if not path.is_file():
            if compiler is None:
                log.warning("CPU kernels: no C++ compiler (install g++ or set CXX); PyTorch's own ops are used")
                return False
            log.info("CPU kernels: compiling the kernel once (~15 s) into %s", path)
            _compile(compiler, path)
        torch.ops.load_library(str(path))
        return True
    except Exception as err:  # a broken toolchain must cost speed, never the model
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        log.warning("CPU kernels unavailable (%s); PyTorch's own ops are used", reason)
        return False
