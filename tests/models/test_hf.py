"""Hugging Face models as registry models: built from allow-listed classes and config data,
saved and rebuilt in a fresh process without importing user code."""

import json

import pytest
import torch

from slimkit.errors import ConfigError
from slimkit.export import load_model, read_spec, save_model
from slimkit.models import build_model

pytest.importorskip("transformers")

BERT = {"input_size": 12, "vocab_size": 40, "hidden_size": 16, "layers": 2, "heads": 2, "intermediate_size": 32,
        "max_length": 16, "num_classes": 3}


def test_bert_records_token_inputs_and_rebuilds_from_its_spec(tmp_path):
    torch.manual_seed(0)
    model = build_model("hf_bert", **BERT).eval()
    assert model.slimkit_inputs["tensors"][0] == {"name": "input_ids", "shape": [12], "dtype": "int64", "high": 40}
    ids = torch.randint(0, 40, (2, 12))
    save_model(model, tmp_path / "m")
    assert read_spec(tmp_path / "m")["spec"]["name"] == "hf_bert"
    assert torch.equal(load_model(tmp_path / "m")(ids).logits, model(ids).logits)  # a pruned one: tests/pruning


def test_generic_hf_builder_takes_a_config_mapping_and_fills_the_data_shape(tmp_path):
    config = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
              "patch_size": 4}
    model = build_model("hf", architecture="ViTForImageClassification", config=config, in_channels=3,
                        input_size=8, num_classes=5).eval()
    assert (model.config.num_channels, model.config.image_size, model.config.num_labels) == (3, 8, 5)
    x = torch.randn(2, 3, 8, 8)
    folder = save_model(model, tmp_path / "vit")
    spec = json.loads((folder / "model.json").read_text())["spec"]
    assert spec["kwargs"]["architecture"] == "ViTForImageClassification"
    assert torch.equal(load_model(folder)(x).logits, model(x).logits)


def test_only_allowed_architectures_and_known_config_fields_are_built():
    with pytest.raises(ConfigError, match="not one slimkit builds"):
        build_model("hf", architecture="os.system")
    with pytest.raises(ConfigError, match="no field 'hiden_size'.*Did you mean 'hidden_size'"):
        build_model("hf", architecture="BertForSequenceClassification", config={"hiden_size": 8})
    with pytest.raises(ConfigError, match="'num_labels' is set by the knob 'num_classes'"):
        build_model("hf", architecture="BertForSequenceClassification", config={"num_labels": 4})
    with pytest.raises(ConfigError, match="not a multiple|hidden size"):
        build_model("hf_bert", **{**BERT, "hidden_size": 15})
    with pytest.raises(ConfigError, match="do not fit max_position_embeddings"):
        build_model("hf_bert", **{**BERT, "input_size": 20})


def test_vit_with_a_distillation_token_is_deit_with_two_heads():
    model = build_model("hf_vit", input_size=8, patch_size=4, hidden_size=16, layers=1, heads=2, intermediate_size=16,
                        distillation_token=True).eval()
    out = model(torch.randn(2, 1, 8, 8))
    assert type(model).__name__ == "DeiTForImageClassificationWithTeacher"
    assert torch.allclose(out.logits, (out.cls_logits + out.distillation_logits) / 2)
