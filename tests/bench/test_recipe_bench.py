def test_quick_recipe_benchmark_times_every_stage(quick_bench):
    data, markdown = quick_bench("recipe")
    assert data["quick"] is True and "data.name=digits" in data["overrides"]
    assert list(data["stage_seconds"]) == ["01-teacher", "02-student", "03-prune", "04-quantize", "05-export"]
    assert all(s > 0 for s in data["stage_seconds"].values())
    assert data["within_15_minutes"] == (data["seconds"] <= 900)
    verdicts = {t["target"]: t for t in data["targets"]}  # the shared schema
    assert {"recipe: >= 10x smaller", "recipe: <= 1 points accuracy lost"} <= set(verdicts)
    size = verdicts["issue 18: >= 20x smaller file"]
    assert size["value"] == data["final"]["ratios"]["size_ratio"] and size["met"] == (size["value"] >= 20)
    minutes = verdicts["issue 18: within 15 minutes on 2 cores (minutes)"]
    assert minutes["met"] == data["within_15_minutes"] and minutes["value"] == data["seconds"] / 60
    assert markdown.startswith("# Compression report") and "| 03-prune |" in markdown
