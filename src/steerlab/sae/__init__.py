"""Sparse autoencoders: variants, training, and save/load in our format and SAELens's.

from steerlab.sae import SAE, SAEConfig, TrainConfig, TensorActivationSource, train_sae
sae = train_sae(SAEConfig(d_in=576, d_sae=9216), TrainConfig(), TensorActivationSource(acts), "runs/sae")
sae = SAE.load("runs/sae/sae")           # ours or a SAELens folder
codes = sae.encode(resid)                # [..., d_sae], dense
"""

from steerlab.sae.base import SAE, SAEOutput
from steerlab.sae.config import SAEConfig
from steerlab.sae.registry import (
    create_sae,
    get_sae_class,
    list_architectures,
    register,
)
from steerlab.sae.saelens_format import load_saelens, save_saelens
from steerlab.sae.sources import ActivationSource, TensorActivationSource
from steerlab.sae.storage import SAEFormatError
from steerlab.sae.train import TrainConfig, train_sae
from steerlab.sae.variants import BatchTopKSAE, JumpReLUSAE, ReLUSAE, TopKSAE

__all__ = [
    "SAE",
    "ActivationSource",
    "BatchTopKSAE",
    "JumpReLUSAE",
    "ReLUSAE",
    "SAEConfig",
    "SAEFormatError",
    "SAEOutput",
    "TensorActivationSource",
    "TopKSAE",
    "TrainConfig",
    "create_sae",
    "get_sae_class",
    "list_architectures",
    "load_saelens",
    "register",
    "save_saelens",
    "train_sae",
]
