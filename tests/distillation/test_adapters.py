import warnings

import numpy as np
import pytest
import torch
from torch import nn

from slimkit.distillation.adapters import LazyAdapter, match_spatial
from slimkit.errors import ModelError


def test_conv_adapter_built_from_first_batch_shapes():
    adapter = LazyAdapter()
    assert not adapter.materialized and list(adapter.parameters()) == []
    assert adapter.materialize(torch.zeros(2, 3, 4, 4), torch.zeros(2, 7, 4, 4)) is True
    assert isinstance(adapter.proj, nn.Conv2d)
    assert adapter.proj.weight.shape == (7, 3, 1, 1)
    assert adapter.materialize(torch.zeros(5, 3, 4, 4), torch.zeros(5, 7, 4, 4)) is False
    assert sum(p.numel() for p in adapter.parameters()) == 7 * 3 + 7


def test_linear_adapter_for_2d_features():
    adapter = LazyAdapter(bias=False)
    out = adapter(torch.randn(4, 5), torch.randn(4, 9))
    assert isinstance(adapter.proj, nn.Linear) and adapter.proj.weight.shape == (9, 5)
    assert adapter.proj.bias is None and out.shape == (4, 9)


def test_spatial_down_is_average_pooling():
    torch.manual_seed(0)
    adapter = LazyAdapter(bias=False)
    s, t = torch.randn(1, 2, 4, 4, dtype=torch.float64), torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    adapter.materialize(s, t)
    w = adapter.proj.weight.detach().numpy()[:, :, 0, 0]  # (3, 2)
    proj = np.einsum("oc,nchw->nohw", w, s.numpy())
    pooled = proj.reshape(1, 3, 2, 2, 2, 2).mean(axis=(3, 5))  # 2x2 blocks
    np.testing.assert_allclose(adapter(s, t).detach().numpy(), pooled, rtol=1e-12)


def bilinear_up(x: np.ndarray, out: int) -> np.ndarray:
    """align_corners=False bilinear resize of the last two (square) dims, written out."""
    n = x.shape[-1]
    scale = n / out
    res = np.zeros(x.shape[:-2] + (out, out))
    for i in range(out):
        for j in range(out):
            si, sj = max((i + 0.5) * scale - 0.5, 0.0), max((j + 0.5) * scale - 0.5, 0.0)
            i0, j0 = int(np.floor(si)), int(np.floor(sj))
            i1, j1 = min(i0 + 1, n - 1), min(j0 + 1, n - 1)
            di, dj = si - i0, sj - j0
            res[..., i, j] = (
                (1 - di) * (1 - dj) * x[..., i0, j0]
                + (1 - di) * dj * x[..., i0, j1]
                + di * (1 - dj) * x[..., i1, j0]
                + di * dj * x[..., i1, j1]
            )
    return res


def test_spatial_up_is_bilinear_interpolation():
    x = torch.arange(8, dtype=torch.float64).reshape(1, 2, 2, 2)
    np.testing.assert_allclose(match_spatial(x, (4, 4)).numpy(), bilinear_up(x.numpy(), 4), rtol=1e-12)
    adapter = LazyAdapter()
    assert adapter(torch.randn(2, 3, 3, 3), torch.randn(2, 5, 6, 6)).shape == (2, 5, 6, 6)


def test_same_size_is_untouched():
    x = torch.randn(1, 2, 3, 3)
    assert match_spatial(x, (3, 3)) is x


def test_warns_when_created_inside_a_training_step_only():
    s, t = torch.randn(2, 3, requires_grad=True), torch.randn(2, 4)
    with pytest.warns(UserWarning, match="Call materialize"):
        LazyAdapter()(s, t)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adapter = LazyAdapter()
        adapter.materialize(s.detach(), t)
        adapter(s, t)
        with torch.no_grad():
            LazyAdapter()(s, t)


def test_shape_errors():
    with pytest.raises(ModelError, match="same rank"):
        LazyAdapter().materialize(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3))
    with pytest.raises(ModelError, match="batch sizes differ"):
        LazyAdapter().materialize(torch.zeros(2, 3), torch.zeros(4, 3))
    adapter = LazyAdapter()
    adapter.materialize(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ModelError, match="built for 3 -> 4 channels but now sees 5 -> 4"):
        adapter.materialize(torch.zeros(2, 5), torch.zeros(2, 4))


@pytest.mark.parametrize("shape_s, shape_t", [((2, 3, 4, 4), (2, 5, 2, 2)), ((2, 3), (2, 6))])
def test_state_dict_rebuilds_an_unmaterialized_adapter(shape_s, shape_t):
    torch.manual_seed(0)
    trained = LazyAdapter()
    s, t = torch.randn(*shape_s), torch.randn(*shape_t)
    trained.materialize(s, t)
    fresh = LazyAdapter()
    fresh.load_state_dict(trained.state_dict())
    assert type(fresh.proj) is type(trained.proj)
    torch.testing.assert_close(fresh(s, t), trained(s, t))


def test_token_features_are_projected_per_token_and_lengths_must_match():
    adapter = LazyAdapter()
    s, t = torch.randn(2, 5, 16), torch.randn(2, 5, 32)
    out = adapter(s, t)
    assert out.shape == (2, 5, 32) and isinstance(adapter.proj, nn.Linear) and adapter.proj.in_features == 16
    torch.testing.assert_close(out[:, 3], adapter.proj(s[:, 3]))  # the same projection for every token
    with pytest.raises(ModelError, match="different lengths"):
        LazyAdapter()(torch.randn(2, 5, 16), torch.randn(2, 6, 16))
