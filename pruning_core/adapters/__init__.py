"""Model adapters: each describes one backbone family to the engine (no forward loop of their own)."""
from .base import Adapter, Encoding, ModelInfo, VisionAccess

__all__ = ["Adapter", "Encoding", "ModelInfo", "VisionAccess"]
