"""Model transforms: BatchNorm fusion, lightweight (depthwise-separable) conversion, surgery helpers.

>>> from slimkit.transform import fuse, lighten
>>> callable(fuse) and callable(lighten)
True
"""

from slimkit.transform.fuse import (
    FUSE,
    FuseConfig,
    FuseReport,
    find_fusable,
    fuse,
    replay_fuse,
)
from slimkit.transform.heads import logit_layers
from slimkit.transform.lightweight import (
    LIGHTEN,
    DepthwiseSeparable,
    LightenConfig,
    lighten,
    replay_lighten,
    separable_from,
    separable_shell,
)
from slimkit.transform.surgery import (
    CompressionWarning,
    Geometry,
    example_input,
    get_layer,
    layer_geometry,
    replace_module,
    trace_layers,
)

__all__ = [
    "FUSE",
    "LIGHTEN",
    "CompressionWarning",
    "DepthwiseSeparable",
    "FuseConfig",
    "FuseReport",
    "Geometry",
    "LightenConfig",
    "example_input",
    "find_fusable",
    "fuse",
    "get_layer",
    "layer_geometry",
    "lighten",
    "logit_layers",
    "replace_module",
    "replay_fuse",
    "replay_lighten",
    "separable_from",
    "separable_shell",
    "trace_layers",
]
