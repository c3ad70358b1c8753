"""The packages of ``steerlab`` form layers that import one way only, and share no private names.

Read from the source (``ast``), so lazy imports inside functions count too. A package may import its
own layer and the layers below it; a ``_private`` name belongs to its package and is never imported
from another one.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "steerlab"

# Lowest first. Top-level modules and the ``steerlab`` root (version, lazy names) are the foundation.
LAYERS: list[set[str]] = [
    {"steerlab", "errors", "settings", "tensor_files", "torch_threads", "blas_threads"},
    {"models"},
    {"generation"},
    {"activations"},
    {"sae", "bundled_saes"},
    {"features"},
    {"steering"},
    {"analysis"},
    {"classifiers"},
    {"engine"},
    {"cluster"},
    {"training"},
    {"agents"},
    {"server"},
    {"client", "client_types", "client_http", "client_local"},
    {"cli"},
]
LAYER_OF = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    """The layer unit of a dotted module name: ``steerlab.models.hooks`` -> ``models``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[tuple[int, str, str | None]]:
    """``(line, imported module, imported name or None)`` for every steerlab import in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, None) for a in node.names if a.name.split(".")[0] == "steerlab"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "steerlab":
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                as_path = root.parent / submodule.replace(".", "/")
                if as_path.is_dir() or as_path.with_suffix(".py").is_file():
                    out.append((node.lineno, submodule, None))
                else:
                    out.append((node.lineno, node.module, alias.name))
    return out


def violations(root: Path = SRC) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        here = module_name(path, root)
        here_unit = unit_of(here)
        assert here_unit in LAYER_OF, f"{here_unit} is in no layer: add it to LAYERS"
        for line, module, name in imports_of(path, root):
            there_unit = unit_of(module)
            where = f"{path.relative_to(root.parent)}:{line}"
            if LAYER_OF[there_unit] > LAYER_OF[here_unit]:
                found.append(f"{where}: {here_unit} imports {module} from a higher layer")
            private = [p for p in (*module.split(".")[1:], name or "") if p.startswith("_") and not p.startswith("__")]
            if there_unit != here_unit and private:
                found.append(f"{where}: {here} imports the private {module}{'.' + name if name else ''}")
    return found


def test_imports_point_down_the_layers_and_keep_private_names_in_their_package():
    found = violations()
    assert not found, "\n".join(found)


def test_the_checker_sees_back_edges_private_names_and_lazy_imports(tmp_path):
    pkg = tmp_path / "steerlab"
    (pkg / "models").mkdir(parents=True)
    (pkg / "steering").mkdir()
    (pkg / "models" / "hooks.py").write_text("def f():\n    from steerlab.steering.chat import stop_token_ids\n")
    (pkg / "steering" / "chat.py").write_text("from steerlab.models.hooks import _hidden\n")
    (pkg / "steering" / "own.py").write_text("from steerlab.steering.chat import _private_here\n")
    assert violations(pkg) == [
        "steerlab/models/hooks.py:2: models imports steerlab.steering.chat from a higher layer",
        "steerlab/steering/chat.py:1: steerlab.steering.chat imports the private steerlab.models.hooks._hidden",
    ]
