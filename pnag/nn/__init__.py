"""Networks of the search spaces and their cost."""

from .cost import Cost, arch_cost
from .mobilenetv3 import MobileNetV3, layer_specs
from .supernet import OFAMobileNetV3, load_supernet, random_supernet

__all__ = ["Cost", "MobileNetV3", "OFAMobileNetV3", "arch_cost", "layer_specs", "load_supernet", "random_supernet"]
