"""Built-in SAE architectures; importing this package registers them."""

from steerlab.sae.variants.batchtopk import BatchTopKSAE
from steerlab.sae.variants.jumprelu import JumpReLUSAE
from steerlab.sae.variants.relu import ReLUSAE
from steerlab.sae.variants.topk import TopKSAE

__all__ = ["BatchTopKSAE", "JumpReLUSAE", "ReLUSAE", "TopKSAE"]
