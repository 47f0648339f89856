import torch
from torch import nn

from slimkit.models import MODELS, build_model
from slimkit.transform import logit_layers

X = torch.randn(2, 8)


class Scaled(nn.Module):
    """A head wrapped in a container with a parameter of its own (a learned temperature)."""

    def __init__(self):
        super().__init__()
        self.fc, self.temperature = nn.Linear(16, 3), nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.fc(x) / self.temperature


class DictOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.norm, self.head = nn.Linear(8, 16), nn.LayerNorm(16), Scaled()

    def forward(self, x):
        features = torch.relu(self.norm(self.body(x)))
        return {"features": features, "logits": self.head(features)}


def test_registry_models_heads_are_their_logits_layers():
    for name in MODELS.names():
        assert logit_layers(build_model(name, input_size=8, num_classes=3), torch.zeros(1, 1, 8, 8)) == ["classifier.out"]


def test_the_head_is_found_through_containers_operations_and_dict_outputs():
    assert logit_layers(DictOut(), X) == ["head.fc"]


def test_every_layer_feeding_the_logits_directly_is_a_head():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 3), nn.Linear(8, 3)

        def forward(self, x):
            h = torch.relu(self.body(x))
            return self.a(h) + nn.functional.dropout(self.b(h), 0.0)

    assert sorted(logit_layers(TwoHeads(), X)) == ["a", "b"]


def test_a_conv_head_and_in_place_activations():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(inplace=True), nn.Conv2d(4, 3, 1), nn.ReLU(inplace=True),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert logit_layers(model, torch.zeros(1, 1, 6, 6)) == ["2"]


def test_tied_embedding_logits_have_no_head_and_frozen_weights_stay_frozen():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.norm = nn.Embedding(10, 8), nn.LayerNorm(8)

        def forward(self, ids):
            return self.norm(self.embed(ids)) @ self.embed.weight.T

    model = Tied().requires_grad_(False).train()
    assert logit_layers(model, torch.tensor([[1, 2, 3]])) == []
    assert not any(p.requires_grad for p in model.parameters()) and model.training
