"""backend="auto": candidates built, checked and timed; the fastest within the accuracy budget
wins, per batch size where runtimes share one file; the choice is reported and survives saving."""

import pytest
import torch

from slimkit.errors import ConfigError
from slimkit.export import INT8, OrtModule, check_parity, report_of, save_model
from slimkit.export.routed import RoutedModule
from slimkit.export.serialize import load_model
from slimkit.quantization import StaticInt8, quantize
from slimkit.quantization import runtime as rt

pytest.importorskip("openvino")


def test_auto_times_every_candidate_and_reports_the_choice(trained_cnn, loaders, test_batch, tmp_path):
    config = StaticInt8(calibration_batches=2, batch_sizes=[1, 64], selection_repeats=3,
                        runtimes=["onnxruntime", "openvino", "onnxruntime-qoperator"])
    q = quantize(trained_cnn, config, loaders.train)
    info = report_of(q, "quantize")["runtime"]
    assert set(info["median_ms"]) == {"onnxruntime", "openvino", "onnxruntime-qoperator", "onnxruntime-fp32 (reference)"}
    assert all(set(row) == {1, 64} and min(row.values()) > 0 for row in info["median_ms"].values())
    assert info["skipped"] == {} and all(p["passed"] for p in info["parity"].values()), info["skipped"]
    assert info["float_accuracy"] is not None and set(info["accuracy"]) == set(info["median_ms"]) - {"onnxruntime-fp32 (reference)"}
    fastest = {b: min(("onnxruntime", "openvino", "onnxruntime-qoperator"), key=lambda n: info["median_ms"][n][b])
               for b in (1, 64)}
    if info["chosen"] == "qdq":
        assert isinstance(q, OrtModule) and set(info["routes"].values()) <= {"onnxruntime", "openvino"}
    assert info["scores"][info["chosen"]] == max(info["scores"].values())
    assert (q(test_batch).argmax(1) == trained_cnn(test_batch).argmax(1)).float().mean() > 0.95
    reloaded = load_model(save_model(q, tmp_path / "q"))
    assert type(reloaded) is type(q) and getattr(reloaded, "routes", None) == getattr(q, "routes", None)
    assert torch.allclose(reloaded(test_batch), q(test_batch), atol=1e-5)
    assert fastest  # the timings name a fastest runtime at every batch size


def test_choose_routes_the_shared_file_and_prefers_faster_artifacts():
    ms = {"onnxruntime": {1: 0.1, 256: 30.0}, "openvino": {1: 0.3, 256: 10.0}, "openvino-nncf": {1: 0.35, 256: 11.0}}
    chosen, routes, scores = rt._choose(ms, list(ms), [1, 256])
    assert chosen == "qdq" and routes == {1: "onnxruntime", 256: "openvino"} and scores["qdq"] == 1.0
    ms["openvino-nncf"] = {1: 0.05, 256: 9.0}
    assert rt._choose(ms, list(ms), [1, 256])[0] == "openvino-nncf"
    tie = {"onnxruntime": {1: 1.0}, "fx": {1: 1.0}}
    assert rt._choose(tie, list(tie), [1])[0] == "qdq"  # ties keep the portable ONNX file


def test_routed_module_runs_each_batch_on_its_route(trained_cnn, loaders):
    plain = quantize(trained_cnn, StaticInt8(calibration_batches=1, backend="onnxruntime"), loaders.train)
    routed = RoutedModule(plain.onnx_bytes(), routes={1: "onnxruntime", 256: "openvino"})
    assert [routed.runtime_for(b) for b in (1, 8, 64, 1000)] == ["onnxruntime", "onnxruntime", "openvino", "openvino"]
    x = torch.randn(100, 1, 8, 8)
    assert torch.allclose(routed(x[:2]), plain(x[:2])) and routed._openvino is None
    assert check_parity(plain, routed, x, tolerance=INT8).passed and routed._openvino is not None  # OpenVINO ran
    assert "_openvino.ov_model" not in routed.state_dict()


def test_an_exported_routed_file_loads_back_routed_and_bad_routes_are_refused(trained_cnn, loaders, tmp_path):
    import onnx

    from slimkit.errors import ExportError
    from slimkit.export import export_onnx, load_onnx
    from slimkit.export.routed import ROUTES_KEY

    plain = quantize(trained_cnn, StaticInt8(calibration_batches=1, backend="onnxruntime"), loaders.train)
    routed = RoutedModule(plain.onnx_bytes(), routes={1: "onnxruntime", 256: "openvino"})
    loaded = load_onnx(export_onnx(routed, tmp_path / "m.onnx"))
    assert type(loaded) is RoutedModule and loaded.routes == {1: "onnxruntime", 256: "openvino"}
    assert type(load_onnx(plain.save(tmp_path / "plain.onnx"))) is OrtModule  # no routes recorded: ORT
    proto = onnx.load_from_string(routed.onnx_bytes())
    next(p for p in proto.metadata_props if p.key == ROUTES_KEY).value = '{"1": "python-eval"}'
    (tmp_path / "bad.onnx").write_bytes(proto.SerializeToString())
    with pytest.raises(ExportError, match=r"bad.onnx: metadata 'slimkit.routes' names unknown runtimes \['python-eval'\]"):
        load_onnx(tmp_path / "bad.onnx")


def test_a_candidate_outside_the_accuracy_budget_is_skipped(trained_cnn, loaders, monkeypatch):
    real = rt._accuracy
    monkeypatch.setattr(rt, "_accuracy", lambda m, b, t: real(m, b, t) - (5.0 if getattr(m, "is_ir", False) else 0.0))
    config = StaticInt8(calibration_batches=1, batch_sizes=[1], selection_repeats=1,
                        runtimes=["onnxruntime", "openvino-nncf"])
    q = quantize(trained_cnn, config, loaders.train)
    info = report_of(q, "quantize")["runtime"]
    assert "more than 0.3 points below float" in info["skipped"]["openvino-nncf"]
    assert "openvino-nncf" not in info["median_ms"] and type(q) is OrtModule


def test_recipes_refuse_runtimes_that_cannot_be_saved():
    from slimkit.recipe.stages.quantize import QuantizeStage

    with pytest.raises(ConfigError, match=r"runtimes \['fx'\] make models that cannot be saved"):
        QuantizeStage.from_dict({"static_int8": {"runtimes": ["onnxruntime", "fx"]}})
    assert QuantizeStage.from_dict({"static_int8": {"backend": "openvino"}}).static_int8.backend == "openvino"


def test_tuned_placement_is_an_extra_candidate(trained_cnn, loaders, monkeypatch):
    monkeypatch.setattr(rt, "slow_int8_layers", lambda timings: ["features.0.conv"])  # as measured on stems
    config = StaticInt8(calibration_batches=1, batch_sizes=[64], selection_repeats=1, tune_layers=True,
                        runtimes=["onnxruntime"])
    info = report_of(quantize(trained_cnn, config, loaders.train), "quantize")
    runtime = info["runtime"]
    assert runtime["slower_in_int8"] == ["features.0.conv"] and "onnxruntime+tuned" in runtime["median_ms"]
    assert runtime["parity"]["onnxruntime+tuned"]["passed"]
    if runtime["chosen"] == "qdq+tuned":
        assert info["float_layers"] == {"features.0.conv": "float: int8 slower here (measured)"}
    else:
        assert info["float_layers"] == {} and runtime["float_for_speed"] == []
