"""Save / load round trips of the SparseAutoencoder."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from sae import SparseAutoencoder
from sae.io import CONFIG_FILE, FORMAT_VERSION, TENSORS_FILE


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    D = rng.normal(size=(12, 32))
    codes = rng.exponential(size=(400, 12)) * (rng.random((400, 12)) < 0.2)
    return (codes @ D + 0.05 * rng.normal(size=(400, 32))).astype(np.float32)


@pytest.fixture(scope="module")
def fitted(X):
    return SparseAutoencoder(24, 3, epochs=20, random_state=3).fit(X)


def test_round_trip_is_exact(fitted, X, tmp_path):
    fitted.save(tmp_path / "sae")
    assert (tmp_path / "sae" / TENSORS_FILE).exists()
    loaded = SparseAutoencoder.load(tmp_path / "sae", device="cpu")

    original = fitted.model_.state_dict()
    restored = loaded.model_.state_dict()
    assert original.keys() == restored.keys()
    for name, tensor in original.items():
        assert torch.equal(tensor.cpu(), restored[name].cpu()), name
    assert torch.equal(fitted.steps_since_fired_.cpu(), loaded.steps_since_fired_.cpu())
    np.testing.assert_array_equal(fitted.firing_frequency_, loaded.firing_frequency_)

    np.testing.assert_array_equal(fitted.transform(X), loaded.transform(X))
    for a, b in zip(fitted.encode_topk(X), loaded.encode_topk(X), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (loaded.n_features_in_, loaded.n_latents_, loaded.k_) == (32, 24, 3)
    assert loaded.n_steps_ == fitted.n_steps_
    assert loaded.metrics_ == fitted.metrics_
    assert loaded.get_params() == {**fitted.get_params(), "device": "cpu"}


def test_config_contents(fitted, tmp_path):
    fitted.save(tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert config["format_version"] == FORMAT_VERSION
    assert (config["d_in"], config["n_latents"], config["k"]) == (32, 24, 3)
    assert config["random_state"] == 3
    assert config["n_steps"] == fitted.n_steps_
    assert config["params"]["epochs"] == 20
    assert {"fvu", "l0", "dead_fraction"} <= set(config["metrics"])
    assert "n_dead" in config["firing_frequency_summary"]
    assert len(config["history"]) == len(fitted.history_)


def test_partial_fit_after_load_continues_like_the_original(fitted, X, tmp_path):
    fitted.save(tmp_path)
    a = copy.deepcopy(fitted).partial_fit(X, epochs=3)
    b = SparseAutoencoder.load(tmp_path, device="cpu").partial_fit(X, epochs=3)
    for name, tensor in a.model_.state_dict().items():
        assert torch.equal(tensor, b.model_.state_dict()[name]), name
    assert b.n_steps_ > fitted.n_steps_
    assert torch.equal(a.steps_since_fired_, b.steps_since_fired_)


def test_unknown_format_version_is_rejected(fitted, tmp_path):
    fitted.save(tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    config["format_version"] = 999
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="format version"):
        SparseAutoencoder.load(tmp_path)


def test_save_requires_fit(tmp_path):
    with pytest.raises(ValueError):
        SparseAutoencoder().save(tmp_path)
