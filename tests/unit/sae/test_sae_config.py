"""SAEConfig validation and the architecture registry."""

from __future__ import annotations

import pytest

from steerlab.sae import (
    SAE,
    SAEConfig,
    create_sae,
    get_sae_class,
    list_architectures,
    register,
)
from steerlab.sae.variants import TopKSAE


def test_builtin_architectures_are_registered():
    assert list_architectures() == ["batchtopk", "jumprelu", "relu", "topk"]
    assert get_sae_class("topk") is TopKSAE


def test_config_round_trips_through_dict():
    cfg = SAEConfig(
        d_in=32,
        d_sae=128,
        architecture="jumprelu",
        hookpoint="model.layers.3",
        layer=3,
        model_name="m",
        extra={"run": "a"},
    )
    again = SAEConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert cfg.to_dict()["hookpoint"] == "model.layers.3"


def test_defaults_are_topk_float32():
    cfg = SAEConfig(d_in=8, d_sae=16, k=4)
    assert (cfg.architecture, cfg.dtype) == ("topk", "float32")


def test_unknown_keys_are_named():
    data = SAEConfig(d_in=8, d_sae=16, k=4).to_dict() | {"lr": 1.0, "expansion": 2}
    with pytest.raises(ValueError, match="unknown SAE config key.*expansion, lr"):
        SAEConfig.from_dict(data)


def test_missing_required_keys_are_named():
    with pytest.raises(ValueError, match="missing required key.*d_sae"):
        SAEConfig.from_dict({"d_in": 8})


def test_unknown_architecture_lists_allowed():
    with pytest.raises(ValueError, match="unknown SAE architecture 'gated'; allowed: batchtopk, jumprelu, relu, topk"):
        SAEConfig(d_in=8, d_sae=16, architecture="gated")
    with pytest.raises(ValueError, match="allowed: batchtopk, jumprelu, relu, topk"):
        get_sae_class("nope")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"d_in": 0, "d_sae": 4}, "d_in"),
        ({"d_in": 4, "d_sae": -1}, "d_sae"),
        ({"d_in": 4, "d_sae": 8, "k": 9}, "k"),
        ({"d_in": 4, "d_sae": 8, "k": 2, "dtype": "int8"}, "dtype"),
    ],
)
def test_bad_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        SAEConfig(**kwargs)


def test_register_custom_variant_and_reject_duplicates():
    @register("test_identity_relu")
    class IdentityReLU(get_sae_class("relu")):  # a user variant reusing ReLU's maths
        pass

    try:
        sae = create_sae(SAEConfig(d_in=4, d_sae=8, architecture="test_identity_relu"))
        assert isinstance(sae, SAE) and sae.architecture == "test_identity_relu"
        with pytest.raises(ValueError, match="already registered"):
            register("test_identity_relu")(type("Other", (IdentityReLU,), {}))
    finally:
        from steerlab.sae import registry

        registry._REGISTRY.pop("test_identity_relu", None)
