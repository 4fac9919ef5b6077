"""Networks of the search spaces and their cost."""

from .mobilenetv3 import MobileNetV3, layer_specs

__all__ = ["MobileNetV3", "layer_specs"]
