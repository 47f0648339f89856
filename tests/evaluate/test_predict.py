import pytest
import torch
from torch import nn

from slimkit.errors import DataError, ModelError
from slimkit.evaluate import Predictions, predict


class TupleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.fc(x)), {"features": x}


def _loader(n=10, batch=4):
    torch.manual_seed(0)
    x, y = torch.randn(n, 4), torch.arange(n) % 3
    return [(x[i : i + batch], y[i : i + batch], "extra") for i in range(0, n, batch)], x, y


def test_predict_collects_logits_and_targets_in_order_from_tuple_outputs():
    model = TupleNet().train()
    loader, x, y = _loader()
    p = predict(model, loader)
    assert isinstance(p, Predictions) and len(p) == 10
    assert torch.equal(p.targets, y)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(p.logits, model.fc(x))  # dropout was off: eval mode
    assert torch.equal(p.labels, p.logits.argmax(1))


def test_predict_restores_training_mode_and_takes_dict_logits():
    class DictNet(nn.Module):
        def forward(self, x):
            return {"logits": x[:, :3]}

    model = TupleNet().train()
    predict(model, _loader()[0])
    assert model.training and model.drop.training
    assert predict(DictNet(), _loader()[0]).logits.shape == (10, 3)


def test_predict_rejects_bad_batches_and_outputs():
    with pytest.raises(DataError, match="needs labels"):
        predict(nn.Identity(), [torch.zeros(2, 3)])
    with pytest.raises(DataError, match="no batches"):
        predict(nn.Identity(), [])
    with pytest.raises(ModelError, match=r"\(batch, classes\)"):
        predict(nn.Identity(), [(torch.zeros(2, 3, 4), torch.zeros(2))])
