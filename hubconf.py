"""torch.hub entry points: one per published PNAG model, generated from :mod:`pnag.zoo`.

    model = torch.hub.load("guoyongcs/PNAG", "pnag_cpu_30")                      # published weights
    model = torch.hub.load("/path/to/checkout", "pnag_cpu_30", source="local", pretrained=False)

Each entry point takes ``(pretrained=True, **kwargs)``; kwargs go to :func:`pnag.zoo.create_model`
(``weights=`` a local file, ``map_location=``, ``progress=``, ``n_classes=``, ``dropout=``).
"""

# torch.hub checks these are importable before loading; pnag itself imports numpy.
dependencies = ["torch", "numpy"]

from pnag import zoo as _zoo  # noqa: E402  (private name: torch.hub lists public callables only)


def _entry_point(name: str):
    info = _zoo.get_model_info(name)

    def entry(pretrained: bool = True, **kwargs):
        return _zoo.create_model(name, pretrained=pretrained, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (
        f"PNAG model {name}: {info.platform} ({info.device}), budget {info.budget_ms} ms; published "
        f"latency {info.reported_latency_ms} ms, ImageNet top-1 {info.reported_top1} %.\n\n"
        f"Architecture {info.arch_string} at width {info.width}, resolution {info.resolution}.\n"
        "pretrained=True downloads the published weights (sha256-checked); kwargs go to "
        "pnag.zoo.create_model."
    )
    return entry


for _name in _zoo.list_models():
    globals()[_name] = _entry_point(_name)
del _name
