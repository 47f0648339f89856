"""``export``: write the artifact a user deploys, check it against the model, and measure it.

Formats: ``onnx`` (an int8 model from ``quantize`` is already ONNX and is written as is),
``torchscript``, ``safetensors`` (weights only), ``sparse`` (pruned weights in sparse storage)
and ``encoded`` (shared/pruned weights with Huffman coding, the Deep Compression format).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from slimkit.recipe.fields import StageConfig
from slimkit.recipe.stages.base import StageResult, stage

if TYPE_CHECKING:
    from torch import nn

    from slimkit.recipe.context import StageContext

FILES = {"onnx": "model.onnx", "torchscript": "model.pt", "program": "model.pt2", "safetensors": "model.safetensors",
         "sparse": "sparse", "encoded": "model.skc"}


class ExportStage(StageConfig):
    """``format``, ``opset`` (ONNX), and ``parity`` (compare the artifact with the model on test data)."""

    type: Literal["export"] = "export"
    format: Literal["onnx", "torchscript", "program", "safetensors", "sparse", "encoded"] = "onnx"
    opset: int | None = Field(None, ge=7)
    parity: bool = True


def _write(model: nn.Module, config: ExportStage, path: Path, example: object) -> None:
    if config.format == "onnx":
        from slimkit.export.onnx import export_onnx

        export_onnx(model, path, example, opset=config.opset)  # type: ignore[arg-type]
    elif config.format == "torchscript":
        from slimkit.export.torchscript import export_torchscript

        export_torchscript(model, path, example)  # type: ignore[arg-type]
    elif config.format == "program":
        from slimkit.export.torchscript import export_program

        export_program(model, path, example)  # type: ignore[arg-type]
    elif config.format == "safetensors":
        from safetensors.torch import save_model

        from slimkit.fileio import atomic_path

        with atomic_path(path) as tmp:
            save_model(model, str(tmp), force_contiguous=True)
    elif config.format == "sparse":
        from slimkit.pruning import save_sparse

        save_sparse(model, path)
    else:
        from slimkit.sharing import encode

        encode(model, path, huffman=True)


@stage("export", ExportStage, doc="write the deployable artifact (ONNX, TorchScript, sparse, encoded) and check it",
       example={"format": "onnx"})
def run_export(ctx: StageContext, config: ExportStage) -> StageResult:
    from slimkit.export.onnx import OrtModule
    from slimkit.export.parity import FP32, check_parity
    from slimkit.recipe.models import deployed_module, tree_bytes

    model = ctx.model.eval()
    path = ctx.folder / FILES[config.format]
    example = ctx.example_input()
    _write(model, config, path, example)
    info = {"format": config.format, "file": path.name, "bytes": tree_bytes(path)}
    deployed = deployed_module(path, model)
    if config.parity and deployed is not model and not isinstance(model, OrtModule):
        batch = next(iter(ctx.loaders().test))[0]
        info["parity"] = check_parity(model, deployed, batch, tolerance=FP32, name=f"{config.format} export").to_dict()
    ctx.log(f"wrote {path} ({info['bytes']:,} bytes)")
    return StageResult(model, info=info, artifact=path)
