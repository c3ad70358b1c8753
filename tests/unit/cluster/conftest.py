"""The feature-build fixtures (a small build config, a corpus file) shared with tests/unit/features."""

from tests.unit.features.conftest import corpus_file, small_build_config  # noqa: F401 (fixtures)
