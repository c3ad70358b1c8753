"""Steering: variants, conditional scopes and Ember controllers, compiled to per-row tensors.

Light to import (no torch): the generation and batch modules are imported where used.
"""

from steerlab.steering.conditions import ClassifierRef, Comparison, ConditionGroup, ScoreComparison, classifier
from steerlab.steering.controller_json import Controller, Intervention, Scope
from steerlab.steering.errors import (
    ContextLengthError,
    ControllerError,
    ConversationError,
    DatasetError,
    EditError,
    InferenceAborted,
    SteeringError,
    UnknownFeatureError,
)
from steerlab.steering.refs import FeatureGroup, FeatureRef
from steerlab.steering.variant import InferenceContext, NestedScope, Variant

__all__ = [
    "ClassifierRef",
    "Comparison",
    "ConditionGroup",
    "ContextLengthError",
    "Controller",
    "ControllerError",
    "ConversationError",
    "DatasetError",
    "EditError",
    "FeatureGroup",
    "FeatureRef",
    "InferenceAborted",
    "InferenceContext",
    "Intervention",
    "NestedScope",
    "Scope",
    "ScoreComparison",
    "SteeringError",
    "UnknownFeatureError",
    "Variant",
    "classifier",
]
