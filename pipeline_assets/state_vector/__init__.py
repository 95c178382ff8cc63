"""The (window_hours, 768) float32 market state: ``StateVectorBuilder`` and its config.

See builder.py for how a vector is built (causality, fill, cache) and layout.py for the columns."""

from pipeline_assets.state_vector.builder import StateVectorBuilder
from pipeline_assets.state_vector.config import StateVectorConfig
from pipeline_assets.state_vector.layout import WIDTH, build_layout

__all__ = ["StateVectorBuilder", "StateVectorConfig", "WIDTH", "build_layout"]
