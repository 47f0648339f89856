"""Launching a command under torchrun: the command line, flag stripping, and bad --nproc."""

import sys

import pytest

from slimkit.commands._launch import launch_command, strip_flag, under_torchrun
from slimkit.errors import ConfigError


def test_command_line_runs_the_cli_module_without_nproc():
    command = launch_command(2, ["run", "r.yaml", "--nproc=2", "--out", "x"])
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert command[3:] == ["--standalone", "--nproc-per-node=2", "-m", "slimkit.cli", "run", "r.yaml", "--out", "x"]
    assert launch_command(1, ["a"], script="s.py")[-2:] == ["s.py", "a"]


def test_strip_and_detect(monkeypatch):
    assert strip_flag(["--nproc", "4", "--nprocs", "1"]) == ["--nprocs", "1"]
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert not under_torchrun()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert under_torchrun()


@pytest.mark.parametrize("bad", [0, -1, True, "2"])
def test_bad_nproc_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="--nproc must be a positive integer"):
        launch_command(bad, ["run"])
