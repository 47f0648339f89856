def test_quick_kill_and_resume_is_exact(quick_bench):
    data, markdown = quick_bench("resume", "--threads", "1")
    assert data["quick"] is True and data["epochs_logged_at_kill"] < 3
    assert data["identical_test_metrics"] and data["identical_weights"]
    assert data["test_straight"] == data["test_resumed"]
    assert "byte-identical weights: **True**" in markdown
