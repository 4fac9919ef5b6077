"""``python -m pnag`` is the ``pnag`` command (also under ``torchrun ... -m pnag``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
