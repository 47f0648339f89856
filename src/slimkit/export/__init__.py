"""Safe persistence and deployable export: ONNX (fp32 and int8 QDQ), TorchScript, torch.export,
with a parity check for every artifact.

Every exporter takes what the model takes (a tensor, positional tensors or named ones, integer
token IDs included; :mod:`slimkit.export.capture`), keeps input names and dtypes, and makes
the batch and any axis marked in ``dynamic_axes`` dynamic."""

from slimkit.export.onnx import OrtModule, export_onnx, onnx_bytes, onnx_ops
from slimkit.export.parity import (
    FP32,
    INT8,
    ExportError,
    ParityError,
    ParityReport,
    Tolerance,
    artifact_latency,
    check_parity,
    load_artifact,
)
from slimkit.export.routed import RoutedModule, load_onnx
from slimkit.export.serialize import (
    CHANGES,
    load_model,
    read_spec,
    record_change,
    record_report,
    report_of,
    save_model,
)
from slimkit.export.torchscript import (
    export_program,
    export_torchscript,
    load_program,
    load_torchscript,
)

__all__ = [
    "CHANGES",
    "FP32",
    "INT8",
    "ExportError",
    "OrtModule",
    "ParityError",
    "ParityReport",
    "RoutedModule",
    "Tolerance",
    "artifact_latency",
    "check_parity",
    "export_onnx",
    "export_program",
    "export_torchscript",
    "load_artifact",
    "load_model",
    "load_onnx",
    "load_program",
    "load_torchscript",
    "onnx_bytes",
    "onnx_ops",
    "read_spec",
    "record_change",
    "record_report",
    "report_of",
    "save_model",
]
