"""ImageNet evaluation of networks: ImageFolder reading, batch-norm recalibration, top-k, torchrun."""

from .distributed import DistContext, distributed, init_distributed
from .imagefolder import EvalTransform, ImageFolder, find_split
from .imagenet import EvalResult, calibrate_on_imagefolder, evaluate_imagefolder, recalibrate_bn

__all__ = ["DistContext", "distributed", "init_distributed", "EvalTransform", "ImageFolder", "find_split",
           "EvalResult", "calibrate_on_imagefolder", "evaluate_imagefolder", "recalibrate_bn"]
