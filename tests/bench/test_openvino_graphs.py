"""bench/openvino_graphs.py compiles slimkit's int8 and NNCF's for OpenVINO and lists what each ran."""

import pytest

pytest.importorskip("openvino")
pytest.importorskip("nncf")


def test_quick_run_lists_both_compiled_graphs_and_times_them(quick_bench):
    data, markdown = quick_bench("openvino_graphs")
    assert data["quick"] is True and data["batch"] == 32
    graphs = data["graphs"]
    assert set(graphs) == {"slimkit int8 (QDQ ONNX)", "NNCF int8 (IR)"}
    for nodes in graphs.values():
        assert any(n["type"] == "Convolution" for n in nodes) and all(n["us"] > 0 for n in nodes)
    assert data["same_graph"] == ([(n["type"], n["kernel"]) for n in graphs["slimkit int8 (QDQ ONNX)"]]
                                  == [(n["type"], n["kernel"]) for n in graphs["NNCF int8 (IR)"]])
    ratio = data["median_ms"]["NNCF int8 (IR)"] / data["median_ms"]["slimkit int8 (QDQ ONNX)"]
    assert [t["value"] for t in data["targets"]] == [pytest.approx(ratio)]
    assert "| 0 |" in markdown and "Convolution" in markdown
