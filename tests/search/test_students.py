"""search_students on tiny data: constraints exclude infeasible candidates (never trained, never
on the front), the front and the chosen student are written, duplicates are not retrained, a
rerun resumes the study, and the chosen student trains fully."""

import json

import optuna
import pytest
import torch

from slimkit.data import make_loaders
from slimkit.distillation import DistillConfig
from slimkit.models import build_model
from slimkit.search.costs import LatencyConfig
from slimkit.search.nas import NASConfig, knobs_key
from slimkit.search.space import SearchSpace
from slimkit.search.students import search_students, train_student
from slimkit.search.workers import SamplerConfig, open_storage
from slimkit.train import TrainConfig, train

ONE_EPOCH = DistillConfig(train=TrainConfig(epochs=1, progress=False))
SPACE = SearchSpace(stages=[2], base_widths=[4, 8], width_multipliers=[0.5, 1.0, 2.0], depths=[1], kernels=[3],
                    separable=[False, True], hidden=[0, 8])


def nas_config(**changes):
    base = {"space": SPACE, "constraints": {"params": "1.0x"}, "proxy": ONE_EPOCH, "final": ONE_EPOCH,
            "latency": LatencyConfig(warmup=0, repeats=2, large_batch=8), "sampler": SamplerConfig(name="random", seed=1)}
    return NASConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from slimkit.data import load_dataset

    torch.set_num_threads(1)
    loaders = make_loaders(load_dataset("synthetic", num_classes=3, shape=(1, 8, 8), size=120, test_size=30), batch_size=16)
    torch.manual_seed(0)
    teacher = build_model("cnn", input_size=8, num_classes=3, channels=[4, 8], hidden=8)
    train(teacher, loaders.train, epochs=2, progress=False)
    out = tmp_path_factory.mktemp("nas")
    # a journal file keeps this module quick; the default SQLite storage is covered by test_workers
    result = search_students(teacher.eval(), loaders, nas_config(), out, n_trials=6, storage=f"journal:{out / 's.log'}")
    return loaders, teacher, out, result


def test_constraints_exclude_infeasible_candidates(setup):
    _, _, _, result = setup
    default = next(r for r in result.rows if r["trial"] == 0)  # enqueued first
    assert default["knobs"] == SPACE.knobs(SPACE.default_choices()) and default["feasible"]
    bound = result.bounds["params"]
    assert bound == result.bounds["default_params"] == default["params"]
    for row in result.rows:
        assert row["feasible"] == (row["params"] <= bound)
        if row["params"] > bound:  # measured before training: never trained, never on the front
            assert not row["trained"] and row["accuracy"] == 0.0 and row not in result.front
    assert any(not r["feasible"] for r in result.rows)
    study = optuna.load_study(study_name="students", storage=open_storage(result.storage))
    infeasible = [t for t in study.trials if any(v > 0 for v in t.constraints.values())]
    assert infeasible and all(not t.user_attrs["trained"] for t in infeasible)  # what the sampler ranks by
    assert all(r["feasible"] and r["trained"] for r in result.front) and result.chosen in result.front


def test_front_files_and_choice(setup):
    _, _, out, result = setup
    saved = json.loads((out / "front.json").read_text())
    assert saved["final"] and saved["chosen"]["trial"] == result.chosen["trial"]
    assert [r["trial"] for r in saved["front"]] == [r["trial"] for r in result.front]
    assert result.chosen["accuracy"] == max(r["accuracy"] for r in result.front)
    assert (out / "front.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "front.md").read_text().startswith("| trial | widths |")
    assert len({knobs_key(r["knobs"]) for r in result.rows}) == len(result.rows)  # each architecture once


def test_a_rerun_resumes_and_duplicates_are_not_retrained(setup):
    loaders, teacher, out, _ = setup
    again = search_students(teacher, loaders, nas_config(), out, n_trials=8, storage=f"journal:{out / 's.log'}")
    study = optuna.load_study(study_name="students", storage=open_storage(again.storage))
    assert len(study.trials) == again.trials == 8
    copies = [t for t in study.trials if "duplicate_of" in t.user_attrs]
    for t in copies:
        original = study.trials[t.user_attrs["duplicate_of"]]
        assert knobs_key(t.user_attrs["knobs"]) == knobs_key(original.user_attrs["knobs"]) and t.values == original.values
    assert len(again.rows) == 8 - len(copies)


def test_single_architecture_space_trains_it_once(tmp_path, setup):
    loaders, teacher, _, _ = setup
    space = SPACE.replace(width_multipliers=[1.0], separable=[False], hidden=[8])
    result = search_students(teacher, loaders, nas_config(space=space, constraints={}), tmp_path, n_trials=3,
                             storage=f"journal:{tmp_path / 's.log'}")
    assert len(result.rows) == 1 and result.trials == 3 and result.chosen["trial"] == 0


def test_chosen_student_trains_fully(setup, tmp_path):
    loaders, teacher, _, result = setup
    student, trained = train_student(result.chosen["knobs"], teacher, loaders, nas_config(), out_dir=tmp_path)
    assert len(trained.history) == 1 and (tmp_path / "last.pt").is_file()
    assert student.slimkit_spec["name"] == "searchnet" and student(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
