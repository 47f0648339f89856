def test_quick_recipe_benchmark_times_every_stage(quick_bench):
    data, markdown = quick_bench("recipe")
    assert data["quick"] is True and "data.name=digits" in data["overrides"]
    assert list(data["stage_seconds"]) == ["01-teacher", "02-student", "03-prune", "04-quantize", "05-export"]
    assert all(s > 0 for s in data["stage_seconds"].values())
    assert data["within_15_minutes"] == (data["seconds"] <= 900)
    assert {t["target"] for t in data["targets"]} >= {">= 10x smaller", "<= 1 points accuracy lost"}
    assert markdown.startswith("# Compression report") and "| 03-prune |" in markdown
