"""Text handling shared by the content guards: Unicode folding and decoding of encodings."""

from maestro_gateway.text.normalize import Normalized, Signal, View, normalize

__all__ = ["Normalized", "Signal", "View", "normalize"]
