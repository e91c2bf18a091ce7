"""Saved models: ``hjbench.load_model`` rebuilds a fitted method from ``models/<trial_id>.pt``.

The runner's ``--save-models`` is simulated for each method as the runner does it: a trial
expanded from a grid, its method fitted on the cell's data, its results row appended to
trials.jsonl and its ``state_dict()`` written to ``models/<trial_id>.pt`` by
``RunFolder.write_model``; one test runs the real runner with ``save_models=True``.
"""

from __future__ import annotations

import pytest
import torch

import baselines
import hjbench
from hjbench import methods, priors
from hjbench.data import sample_split
from hjbench.errors import RunError
from hjbench.run.folder import RunFolder
from hjbench.run.grid import expand
from hjbench.run.validate import validate

baselines.register()

METHODS = ("hj", "maxplus", "lpn", "lista")


def _saved_run(tmp_path, name: str):
    """A run folder with one ok trial of ``name`` and its saved state; returns (folder, trial id, fitted)."""
    params = dict(methods.entry(name).cls.test_params)
    cfg = validate({"name": "models", "methods": [{"name": name, "params": params}], "priors": ["l1"],
                    "dims": [2], "n_samples": [48], "repetitions": 1, "n_test": 16, "n_cross": 11,
                    "device": "cpu", "dtype": "float32"})
    (trial,) = expand(cfg, "models-run", "test")
    i = trial.identity
    prior = priors.get(i.prior, dim=i.dim, t=i.t, **trial.prior_ctor)
    split = sample_split(prior, i.n_samples, n_test=cfg.n_test, regime=i.regime, box=i.box,
                         generator=torch.Generator().manual_seed(i.seed), dtype=torch.float32)
    fitted = methods.get(i.method, **trial.params).fit(split.train, seed=i.method_seed)
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    folder.write_run_json({"run_id": "models-run", "config": cfg.to_dict()})
    folder.append({**i.row(), "status": "ok", "message": ""})
    folder.write_model(trial.trial_id, fitted.state_dict())  # what the runner's driver does
    return folder.path, trial.trial_id, fitted


@pytest.mark.parametrize("name", METHODS)
def test_load_model_gives_the_same_outputs_exactly(tmp_path, name):
    run_dir, trial_id, fitted = _saved_run(tmp_path, name)
    loaded = hjbench.load_model(run_dir, trial_id)
    assert type(loaded) is type(fitted) and loaded.name == name
    assert loaded.get_params() == fitted.get_params()
    assert loaded.provides == fitted.provides and "prox" in loaded.provides
    x = (torch.rand(40, 2, generator=torch.Generator().manual_seed(7)) - 0.5) * 8.0
    assert torch.equal(loaded.prox(x), fitted.prox(x))
    if "potential" in fitted.provides:
        assert torch.equal(loaded.potential(x), fitted.potential(x))
    if "prior" in fitted.provides:
        y = fitted.prox(x)
        assert torch.equal(loaded.prior(y), fitted.prior(y))
    assert {k: v.as_dict() for k, v in loaded.training_.items()} == {
        k: v.as_dict() for k, v in fitted.training_.items()}


def test_load_model_takes_a_run_object_too(tmp_path):
    run_dir, trial_id, fitted = _saved_run(tmp_path, "maxplus")
    loaded = hjbench.load_model(hjbench.load(run_dir), trial_id)
    x = torch.zeros(3, 2)
    assert torch.equal(loaded.prox(x), fitted.prox(x))


def test_a_state_that_is_not_plain_data_is_refused(tmp_path):
    """weights_only=True refuses pickled objects: a TrainLog left as a dataclass is named."""
    from hjbench.training.budget import TrainLog

    run_dir, trial_id, fitted = _saved_run(tmp_path, "maxplus")
    state = fitted.state_dict()
    state["training_"] = {"fit": TrainLog()}
    torch.save(state, run_dir / "models" / f"{trial_id}.pt")
    with pytest.raises(RunError) as info:
        hjbench.load_model(run_dir, trial_id)
    message = str(info.value)
    assert "weights_only=True" in message and ".as_dict()" in message and "\n" not in message


def test_a_run_with_save_models_reloads_every_trial(tmp_path):
    """The real path: hjbench.run(save_models=True) writes the files, load_model restores them."""
    run = hjbench.run({"name": "saved", "methods": [{"name": "maxplus"}, {"name": "lista",
                       "params": dict(methods.entry("lista").cls.test_params)}], "priors": ["l1"], "dims": [2],
                       "n_samples": [32], "repetitions": 1, "n_test": 16, "n_cross": 11, "device": "cpu"},
                      out=tmp_path / "saved", jobs=0, save_models=True)
    trials = run.trials
    assert (trials["status"] == "ok").all() and len(trials) == 2
    x = torch.linspace(-3, 3, 14).reshape(7, 2)
    for _, row in trials.iterrows():
        i = row.to_dict()
        method = hjbench.load_model(run, i["trial_id"])
        assert method.name == i["method"] and method.dim_ == 2
        prior = priors.get(i["prior"], dim=2, t=float(i["t"]))
        split = sample_split(prior, int(i["n_samples"]), n_test=16, regime=i["regime"], box=float(i["box"]),
                             generator=torch.Generator().manual_seed(int(i["seed"])), dtype=torch.float32)
        refit = methods.get(i["method"], **method.get_params()).fit(split.train, seed=int(i["method_seed"]))
        assert torch.equal(method.prox(x), refit.prox(x))  # the state of the trial, not of another fit


def test_missing_trial_or_file_is_one_line(tmp_path):
    run_dir, trial_id, _ = _saved_run(tmp_path, "maxplus")
    with pytest.raises(RunError, match=r"trial_id='nope' is not a trial of .*allowed: a value"):
        hjbench.load_model(run_dir, "nope")
    (run_dir / "models" / f"{trial_id}.pt").unlink()
    with pytest.raises(RunError, match=r"\.pt does not exist; allowed: .*--save-models"):
        hjbench.load_model(run_dir, trial_id)
