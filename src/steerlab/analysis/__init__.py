"""Analysis on your own model: inspect, contrast and attribute features (see each module)."""

from steerlab.analysis.attribution import AttributionResult, FeatureAttribution, attribute
from steerlab.analysis.contrast import ContrastFeature, ContrastResult, contrast
from steerlab.analysis.inspect import FeatureActivation, Inspection, TokenFeatures, inspect

__all__ = [
    "AttributionResult",
    "ContrastFeature",
    "ContrastResult",
    "FeatureActivation",
    "FeatureAttribution",
    "Inspection",
    "TokenFeatures",
    "attribute",
    "contrast",
    "inspect",
]
