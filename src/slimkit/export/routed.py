"""One int8 ONNX file, run by whichever runtime was measured fastest at the caller's batch size.

ONNX Runtime and OpenVINO both run slimkit's int8 QDQ ONNX. On the zoo CNNs ONNX Runtime wins at
batch 1 (less overhead per call) and OpenVINO at batch 256 (faster int8 convolutions), so
:class:`RoutedModule` keeps the one file and routes each call (see
:func:`slimkit.quantization.runtime.select_runtime`, which measures the routes).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from torch import nn

from slimkit.export.onnx import OrtModule
from slimkit.export.serialize import CHANGES

__all__ = ["QDQ_RUNTIMES", "ROUTES_KEY", "RoutedModule", "load_onnx", "routes_of"]

#: Runtimes that run slimkit's own QDQ ONNX file (and so can share one artifact).
QDQ_RUNTIMES = ("onnxruntime", "openvino")
#: The ONNX metadata key under which the file records its measured routes, so that the ``.onnx``
#: a user ships (and :func:`load_onnx`) keeps them.
ROUTES_KEY = "slimkit.routes"


def _with_routes(data: bytes, routes: dict[int, str]) -> bytes:
    """``data`` with ``routes`` in its metadata (replacing any routes it had)."""
    import onnx

    proto = onnx.load_from_string(data)
    kept = [p for p in proto.metadata_props if p.key != ROUTES_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    proto.metadata_props.add(key=ROUTES_KEY, value=json.dumps({str(b): r for b, r in sorted(routes.items())}))
    return proto.SerializeToString()


def routes_of(data: bytes, source: str = "the ONNX file") -> dict[int, str] | None:
    """The routes an ONNX file records, or None. Routes are data: batch sizes and runtime names
    from :data:`QDQ_RUNTIMES`; anything else is refused naming ``source``."""
    import onnx

    from slimkit.errors import ExportError

    found = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}.get(ROUTES_KEY)
    if found is None:
        return None
    try:
        routes = {int(b): str(r) for b, r in json.loads(found).items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise ExportError(f"{source}: metadata '{ROUTES_KEY}' is not a mapping of batch sizes to runtimes",
                          hint="re-export the model, or delete the metadata entry") from exc
    bad = sorted(r for r in routes.values() if r not in QDQ_RUNTIMES)
    if bad or any(b < 1 for b in routes):
        raise ExportError(f"{source}: metadata '{ROUTES_KEY}' names unknown runtimes {bad} or batch sizes < 1",
                          hint=f"runtimes are {list(QDQ_RUNTIMES)}; re-export the model")
    return routes


class RoutedModule(OrtModule):
    """Slimkit's int8 QDQ ONNX, run by the runtime measured fastest at the caller's batch size.

    ``routes`` maps measured batch sizes to runtimes (``{1: "onnxruntime", 256: "openvino"}``);
    a call uses the route of the nearest measured batch size (on a log scale). The ONNX file is
    the artifact either way (``save``, ``onnx_bytes``, ``onnx_ops`` work as on an OrtModule);
    where OpenVINO is not installed every call runs in ONNX Runtime. The file records its routes
    in its metadata, so a saved or exported ``.onnx`` loads back routed (:func:`load_onnx`).
    """

    def __init__(self, model: bytes | None = None, *, size: int = 0, routes: dict[int, str] | None = None) -> None:
        routes = {int(b): str(r) for b, r in (routes or {}).items()}
        super().__init__(_with_routes(model, routes) if model and routes else model, size=size)
        self.routes = routes
        object.__setattr__(self, "_openvino", None)  # built on first use; not a submodule (no state)
        object.__setattr__(self, "_route_of", {})  # batch size -> runtime: the call path is hot at batch 1

    def runtime_for(self, batch: int) -> str:
        """The runtime a call with ``batch`` samples uses."""
        found = self._route_of.get(batch)
        if found is None:
            found = self._route_of[batch] = self._nearest_route(batch)
        return found

    def _nearest_route(self, batch: int) -> str:
        if not self.routes:
            return "onnxruntime"
        nearest = min(self.routes, key=lambda b: abs(math.log(max(batch, 1)) - math.log(b)))
        runtime = self.routes[nearest]
        if runtime == "openvino":
            from slimkit.export.openvino import available

            return runtime if available() else "onnxruntime"
        return runtime

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        first = args[0] if args else next(iter(kwargs.values()), None)
        if isinstance(first, dict):
            first = next(iter(first.values()), None)
        shape = getattr(first, "shape", None)
        batch = int(shape[0]) if shape else 1
        if self.runtime_for(batch) == "openvino":
            if self._openvino is None:
                from slimkit.export.openvino import OpenVINOModule

                object.__setattr__(self, "_openvino", OpenVINOModule(self.onnx_bytes()))
            return self._openvino(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        object.__setattr__(self, "_openvino", None)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_openvino"] = None
        return state

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, routes={self.routes}"


def load_onnx(path: str | Path) -> OrtModule:
    """An ``.onnx`` file as a callable module run by ONNX Runtime, or, where the file records the
    runtime measured fastest per batch size (slimkit's int8 QDQ), a :class:`RoutedModule`."""
    from slimkit.errors import ExportError

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no ONNX file at {path}", hint="export one with slimkit.export.export_onnx")
    data = path.read_bytes()
    routes = routes_of(data, str(path))
    return RoutedModule(data, routes=routes) if routes else OrtModule(data)


def _replay_ort(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Loading a saved OrtModule: an empty one of the recorded size; the bytes load after. A
    model whose runtime was chosen per batch size gets its routes back."""
    if change.get("routes"):
        routes = {int(b): str(r) for b, r in dict(change["routes"]).items()}
        return RoutedModule(size=int(change["bytes"]), routes=routes)
    return OrtModule(size=int(change["bytes"]))


if "onnxruntime" not in CHANGES:
    CHANGES.add("onnxruntime", _replay_ort, doc="model replaced by an ONNX Runtime artifact")
