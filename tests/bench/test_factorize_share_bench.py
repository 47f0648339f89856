"""The factorize/share benchmark's --quick run works and writes every figure it promises."""


def test_quick_benchmark_writes_results(quick_bench):
    data, markdown = quick_bench("factorize_share", "--threads", "1")
    assert data["benchmark"] == "factorize_share" and data["quick"] is True
    assert {"cpu", "cores", "torch", "commit"} <= set(data["machine"])
    for label in ("LeNet-300-100", "LeNet-5 (20-50-500)"):
        stages = data["deep_compression"][label]["stages"]
        assert [s["stage"] for s in stages] == ["fp32", "pruned", "clustered", "huffman"]
        assert stages[0]["bytes"] > stages[-1]["bytes"] and all(0 <= a <= 1 for s in stages for a in s["accuracy"])
    rows = data["factorization"]["rows"]
    assert {(r["method"], r["target_macs"]) for r in rows} == {(m, t) for m in ("svd", "tucker", "cp") for t in (0.5, 0.25)}
    for r in rows:
        assert r["macs_ratio"] <= r["target_macs"] + 0.01
        assert set(r["speedup"]) == {"eager", "deployed"} and r["layer_speedup"] > 0
    light = data["lightweight"]
    assert light["macs_ratio"] > 1 and light["converted"] and light["skipped"][0]["layer"] == "features.0.conv"
    assert "Deep Compression" in markdown and "Tucker" in markdown and "depthwise" in markdown
