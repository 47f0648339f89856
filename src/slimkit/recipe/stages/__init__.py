"""Recipe stage types, one module each; every public module here is imported, so adding a stage
type is adding a file with one ``@stage(...)`` registration (see :mod:`.base`).

>>> from slimkit.recipe.stages import STAGES
>>> "train" in STAGES and "export" in STAGES
True
"""

from __future__ import annotations

import importlib
import pkgutil

from slimkit.recipe.stages.base import (
    STAGES,
    StageResult,
    StageType,
    build_stage,
    one_of,
    stage,
    technique,
)

for _info in pkgutil.iter_modules(__path__):
    if _info.name != "base" and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["STAGES", "StageResult", "StageType", "build_stage", "one_of", "stage", "technique"]
