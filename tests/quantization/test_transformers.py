"""Int8 for transformers: dynamic int8 of every Linear in ONNX Runtime with named int64 inputs
and dynamic batch and sequence axes, int8 embeddings, static int8 for a ViT; parity passes."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from slimkit.export import load_model, onnx_ops, report_of, save_model
from slimkit.models import build_model
from slimkit.quantization import DynamicInt8, EmbeddingInt8, Int8Embedding, StaticInt8, quantize

pytest.importorskip("transformers")

NAMES = ("input_ids", "attention_mask", "token_type_ids")


class Texts(Dataset):
    """Token IDs with a padded tail, attention masks and segment IDs, as a tokenizer gives them."""

    def __init__(self, n: int, length: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, 200, (n, length), generator=generator)
        self.mask = torch.ones(n, length, dtype=torch.long)
        self.mask[::2, -3:] = 0
        self.ids[self.mask == 0] = 0

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i],
                "token_type_ids": torch.zeros_like(self.ids[i]), "labels": self.ids[i, 0] % 3}


def test_bert_dynamic_int8_in_onnx_runtime_takes_named_int64_inputs_at_any_batch_and_length(tmp_path):
    torch.manual_seed(0)
    model = build_model("hf_bert", input_size=16, vocab_size=200, hidden_size=32, layers=2, heads=2,
                        intermediate_size=64, max_length=64, num_classes=3).eval()
    loader = DataLoader(Texts(8, 16), batch_size=4)
    tables = quantize(model, EmbeddingInt8())
    assert isinstance(tables.bert.embeddings.word_embeddings, Int8Embedding)
    assert torch.equal(load_model(save_model(tables, tmp_path / "e"))(loader.dataset.ids[:2]).logits,
                       tables(loader.dataset.ids[:2]).logits)
    int8 = quantize(tables, DynamicInt8(dynamic_axes={n: {1: "sequence"} for n in NAMES}), loader)
    report = report_of(int8, "quantize")
    assert report["parity"]["passed"] and report["export_parity"]["passed"]
    assert int8.input_names == list(NAMES)
    assert {i.type for i in int8.session().get_inputs()} == {"tensor(int64)"}
    ops = onnx_ops(int8)
    assert ops.get("MatMulInteger", 0) >= 12 and "MatMul" not in {k for k, v in ops.items() if v > 4}
    longer = Texts(3, 40)  # another batch size and sequence length than the export's
    batch = {"input_ids": longer.ids, "attention_mask": longer.mask, "token_type_ids": torch.zeros_like(longer.ids)}
    got, want = int8(**batch), model(**batch)
    assert got.logits.shape == (3, 3)
    assert (got.logits - want.logits).abs().max() < 0.1


def test_vit_static_int8_quantizes_every_linear():
    torch.manual_seed(0)
    model = build_model("hf_vit", input_size=8, patch_size=4, hidden_size=16, layers=1, heads=2,
                        intermediate_size=32, num_classes=3).eval()
    loader = DataLoader(TensorDataset(torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))), batch_size=8)
    int8 = quantize(model, StaticInt8(calibration_batches=2), loader)
    report = report_of(int8, "quantize")
    assert report["parity"]["passed"] and report["float_layers"] == {}
    assert len(report["quantized_layers"]) == 8  # patch projection, q/k/v/o, fc1/fc2, classifier
    assert onnx_ops(int8).get("QuantizeLinear", 0) > 0
