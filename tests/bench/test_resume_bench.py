def test_quick_kill_and_resume_is_exact(quick_bench):
    data, markdown = quick_bench("resume", "--threads", "1")
    run = data["resume"]
    assert run["quick"] is True and run["epochs_logged_at_kill"] < 3 and run["commit"] and run["machine"]["cpu"]
    assert run["identical_test_metrics"] and run["identical_weights"]
    assert run["test_straight"] == run["test_resumed"]
    assert [t["met"] for t in data["targets"]] == [True, True]
    assert "byte-identical weights: **True**" in markdown
