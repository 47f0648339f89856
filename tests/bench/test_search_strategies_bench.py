"""The search benchmark's strategy comparison (--part strategies) runs at its --quick size: each
strategy searched, its children trained and timed, fronts and the target in the shared schema."""



def test_quick_strategy_comparison(quick_bench):
    data, markdown = quick_bench("search", "--part", "strategies", timeout=900)
    section = data["strategies"]
    assert {"commit", "machine"} <= set(section)
    for name in ("nsga2", "rl", "darts"):
        row = section[name]
        assert row["seconds"] > 0 and row["children"], name
        for child in row["children"]:
            assert len(child["test_acc"]) == 1 and child["latency_b1_ms"] > 0 and child["latency_b256_ms"] > 0
    assert section["darts"]["children"][0]["family"] == "dartsnet"
    assert all(c["family"] == "searchnet" for c in section["rl"]["children"] + section["nsga2"]["children"])
    verdict = section["verdict"]
    assert set(verdict["fronts"]) == {"nsga2", "rl", "darts"} and len(verdict["best_children"]) == 2
    assert verdict["met"] == any(not r["dominated"] for r in verdict["best_children"])
    (row,) = data["targets"]
    assert row["met"] == verdict["met"] and "not dominated" in row["target"]
    assert "Strategies at equal search time" in markdown and "search" not in data  # only this part ran
