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
        assert set(r["speedup"]) == {"eager", "deployed", "onnxruntime"} and r["layer_speedup"] > 0
        assert all(s > 0 for form in r["speedup"].values() for s in form.values())
        # the verdict follows from the figures: the speed check lists the forms at >= 1.5x on the big batch
        assert r["fast_forms"] == [f for f, s in r["speedup"].items() if s["32"] >= 1.5]
        if r["method"] == "svd":
            assert r["meets_speed_and_accuracy"] is False
    for method in ("tucker", "cp"):  # ranks are multiples of 16 (or a layer's full width)
        assert all(k % 16 == 0 for r in rows if r["method"] == method for ks in r["ranks"].values() for k in ks)
    fact = data["factorization"]
    passing = [r["macs_ratio"] for r in rows if r["meets_speed_and_accuracy"]]
    assert fact["target_met"] == any(m <= 0.5 for m in passing)
    assert fact["least_reduction_passing"] == (max(passing) if passing else None)
    light = data["lightweight"]
    assert light["macs_ratio"] > 1 and light["converted"] and light["skipped"][0]["layer"] == "features.0.conv"
    assert set(light["speedup"]) == {"eager", "deployed", "onnxruntime"}
    assert "Deep Compression" in markdown and "Tucker" in markdown and "depthwise" in markdown
    assert "ONNX Runtime b1 / b32" in markdown and "gradual (cubic) pruning" in markdown
    assert data["deep_compression"]["LeNet-300-100"]["config"]["schedule"] == "gradual"
    for section in ("deep_compression", "factorization", "lightweight"):  # each stamped with what measured it
        assert data[section]["commit"] == data["commit"] and {"cpu", "torch"} <= set(data[section]["machine"])
    verdicts = {row["target"]: row for row in data["targets"]}  # the shared schema (bench/_common.check_targets)
    assert len(verdicts) == 5 and all(set(row) == {"target", "value", "met"} for row in verdicts.values())
    for label in ("LeNet-300-100", "LeNet-5 (20-50-500)"):
        size = verdicts[f"Deep Compression {label}: >= 40x smaller than fp32"]
        assert size["value"] == data["deep_compression"][label]["stages"][-1]["ratio"] and size["met"] == (size["value"] >= 40)
    speed = verdicts["Tucker or CP at <= 0.5 of the MACs, <= 0.5 points lost: >= 1.5x faster at b32"]
    assert speed["met"] == fact["target_met"] and speed["met"] == (speed["value"] >= 1.5)

    # one section re-measured into the stored results; the others are kept as measured
    again, text = quick_bench("factorize_share", "--threads", "1", "--only", "lightweight")
    assert again["deep_compression"] == data["deep_compression"] and again["factorization"] == data["factorization"]
    assert again["reruns"]["lightweight"]["seconds"] > 0 and again["seconds"] == data["seconds"]
    assert again["targets"] == data["targets"]  # the verdicts follow from the kept sections
    assert "Section lightweight re-measured alone" in text
    assert "(1 seed)" in text and "± 0.00" not in text.split("## SVD")[1]  # one fine-tune seed is not a spread of 0
