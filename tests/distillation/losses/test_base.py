import pytest
import torch

from slimkit.distillation.losses import (
    ATLoss,
    HardLabelLoss,
    Outputs,
    SPLoss,
    required_features,
)
from slimkit.errors import ConfigError, DataError, ModelError


def test_missing_feature_names_the_loss_role_and_captured_keys():
    s = Outputs(torch.zeros(2, 3), {"features.3": torch.zeros(2, 4, 2, 2)})
    t = Outputs(torch.zeros(2, 3), {"features.6": torch.zeros(2, 4, 2, 2)})
    with pytest.raises(ConfigError, match="'at': student feature 'features.4' was not captured. Did you mean 'features.3'") as info:
        ATLoss("features.4", "features.6")(s, t)
    assert "features.3" in info.value.hint and "FeatureCapture" in info.value.hint


def test_hard_label_loss_needs_targets():
    s = Outputs(torch.zeros(2, 3))
    with pytest.raises(DataError, match="needs hard labels"):
        HardLabelLoss()(s, s)
    with pytest.raises(DataError):
        HardLabelLoss()(s, s, (torch.zeros(2, 1),))


def test_batch_size_mismatch_is_reported():
    with pytest.raises(ModelError, match="batch sizes differ"):
        SPLoss()(Outputs(torch.zeros(2, 3)), Outputs(torch.zeros(3, 3)))


def test_outputs_detach_and_required_features_of_logit_losses():
    x = torch.ones(2, 3, requires_grad=True)
    out = Outputs(x * 2, {"f": x * 3}).detach()
    assert not out.logits.requires_grad and not out.features["f"].requires_grad
    assert required_features(SPLoss()) == ([], [])
    assert required_features(SPLoss("a", "b")) == (["a"], ["b"])
