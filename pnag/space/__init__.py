"""Search spaces: architectures as values, their text forms, encodings and sampling."""

from .base import SearchSpace
from .mbv3 import MBV3Arch, MBV3Space, parse_arch

__all__ = ["SearchSpace", "MBV3Arch", "MBV3Space", "parse_arch"]

from .nb201 import NB201Arch, NB201Space, parse_nb201  # noqa: E402

__all__ += ["NB201Arch", "NB201Space", "parse_nb201"]


def get_space(name: str, **kwargs) -> SearchSpace:
    """A search space by name: ``mbv3`` (kwargs: width, resolution, encoding) or ``nb201``."""
    from ..errors import PnagError

    if name == "mbv3":
        return MBV3Space(**kwargs)
    if name == "nb201":
        return NB201Space()
    raise PnagError(f"space: {name!r} is not known; allowed: mbv3 or nb201")


__all__ += ["get_space"]
