"""Model transforms: BatchNorm fusion, lightweight (depthwise-separable) conversion, surgery helpers.

>>> from slimkit.transform import fuse, lighten
>>> callable(fuse) and callable(lighten)
True
"""

from slimkit.transform.fuse import (
    FuseConfig,
    FuseReport,
    find_fusable,
    fuse,
    replay_fuse,
)
from slimkit.transform.lightweight import (
    DepthwiseSeparable,
    LightenConfig,
    lighten,
    replay_lighten,
    separable_from,
    separable_shell,
)
from slimkit.transform.recovery import recover_from
from slimkit.transform.surgery import (
    Geometry,
    example_input,
    get_layer,
    layer_geometry,
    replace_module,
)

__all__ = [
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
    "recover_from",
    "replace_module",
    "replay_fuse",
    "replay_lighten",
    "separable_from",
    "separable_shell",
]
