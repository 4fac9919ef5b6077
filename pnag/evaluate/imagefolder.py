"""An ImageNet-style ImageFolder reader and the standard evaluation transform, without torchvision.

Layout: ``DATA_DIR/<split>/<class>/<image>``; class folders sorted by name give labels 0, 1, ...
(the ImageNet synset order when the folders are the synset ids). Images are decoded with Pillow and
converted to RGB. Unreadable images are not fatal: the dataset yields a zero image flagged invalid,
and evaluation skips and counts it.

Evaluation transform (once-for-all / torchvision convention): resize the shorter side to
``ceil(crop / 0.875)`` pixels (256 for a 224 crop) with bilinear filtering, centre crop ``crop`` x
``crop``, scale to [0, 1], normalise with the ImageNet mean and standard deviation.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val")


def resize_for_crop(crop: int) -> int:
    """Shorter-side size before a centre crop of ``crop`` pixels: ``ceil(crop / 0.875)`` (256 for 224)."""
    return int(math.ceil(crop / 0.875))


class EvalTransform:
    """PIL image -> normalised float tensor ``(3, crop, crop)``.

    Args:
        crop: side of the centre crop (pixels).
        resize: shorter side after resizing (pixels); default ``ceil(crop / 0.875)``.
    """

    def __init__(self, crop: int = 224, resize: int | None = None):
        if crop < 1:
            raise DataError(f"crop: {crop}; allowed: an integer >= 1 (pixels)")
        self.crop = int(crop)
        self.resize = resize_for_crop(self.crop) if resize is None else int(resize)
        if self.resize < self.crop:
            raise DataError(f"resize: {self.resize} is smaller than the crop {self.crop}; allowed: >= crop")
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = img.convert("RGB")
        w, h = img.size
        # torchvision's Resize(int): the shorter side becomes `resize`, the longer keeps the aspect.
        if w <= h:
            size = (self.resize, int(self.resize * h / w))
        else:
            size = (int(self.resize * w / h), self.resize)
        if size != (w, h):
            img = img.resize(size, Image.BILINEAR)
        w, h = img.size
        top, left = int(round((h - self.crop) / 2.0)), int(round((w - self.crop) / 2.0))
        img = img.crop((left, top, left + self.crop, top + self.crop))
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)
        return (x - self._mean) / self._std


def find_split(data_dir: str | os.PathLike, split: str) -> Path:
    """``DATA_DIR/split`` as a checked folder (``split``: train or val)."""
    if split not in SPLITS:
        raise DataError(f"split: {split!r}; allowed: train or val")
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"DATA_DIR: {str(root)!r} is not a folder; expected an ImageNet folder with "
                        "train/<class>/<image> and val/<class>/<image>")
    path = root / split
    if not path.is_dir():
        raise DataError(f"DATA_DIR: {str(path)!r} is missing; expected the {split} split there as "
                        f"{split}/<class>/<image> (ImageNet ImageFolder layout)")
    return path


class ImageFolder(torch.utils.data.Dataset):
    """Images under ``root/<class>/`` with labels from the sorted class folder names.

    ``dataset[i]`` is ``(image, label, valid)``: the transformed image (zeros when the file cannot be
    decoded), the integer label and whether the image was readable.
    """

    def __init__(self, root: str | os.PathLike, transform: EvalTransform):
        self.root = Path(root)
        self.transform = transform
        self.classes = sorted(e.name for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith("."))
        if not self.classes:
            raise DataError(f"image folder: {str(self.root)!r} has no class folders; expected "
                            f"{self.root}/<class>/<image>")
        self.samples: list[tuple[str, int]] = []
        for label, name in enumerate(self.classes):
            for dirpath, _, files in sorted(os.walk(self.root / name, followlinks=True)):
                for f in sorted(files):
                    if f.lower().endswith(IMAGE_EXTENSIONS):
                        self.samples.append((os.path.join(dirpath, f), label))
        if not self.samples:
            raise DataError(f"image folder: {str(self.root)!r} has no images ({', '.join(IMAGE_EXTENSIONS)}) "
                            "in its class folders")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, bool]:
        path, label = self.samples[index]
        try:
            with Image.open(path) as img:
                return self.transform(img), label, True
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
            return torch.zeros(3, self.transform.crop, self.transform.crop), label, False


__all__ = ["EvalTransform", "ImageFolder", "find_split", "resize_for_crop", "IMAGENET_MEAN", "IMAGENET_STD"]
