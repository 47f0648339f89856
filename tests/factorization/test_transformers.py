"""SVD of a transformer's attention and feed-forward projections: embeddings and heads stay."""

import pytest
import torch

from slimkit.export import load_model, report_of, save_model
from slimkit.factorization import SVD, factorize
from slimkit.models import build_model

pytest.importorskip("transformers")


def test_svd_factorizes_projections_and_leaves_patch_embedding_and_classifier(tmp_path):
    torch.manual_seed(0)
    model = build_model("hf_vit", input_size=8, patch_size=4, hidden_size=64, layers=1, heads=4,
                        intermediate_size=128, num_classes=3).eval()
    x = torch.randn(2, 1, 8, 8)
    factorize(model, SVD(target_params=0.7, allocation="energy"), example_inputs=x)
    report = report_of(model, "factorize")
    done = {row["layer"] for row in report["layers"]}
    skipped = {row["layer"]: row["reason"] for row in report["skipped"]}
    assert "patch embedding" in skipped["vit.embeddings.patch_embeddings.projection"]
    assert "classifier head" in skipped["classifier"]
    assert any("mlp" in name for name in done) and any("attention" in name for name in done)
    assert torch.allclose(load_model(save_model(model, tmp_path / "f"))(x).logits, model(x).logits, atol=1e-5)
    patch = build_model("hf_vit", input_size=8, patch_size=4, hidden_size=64, layers=1, heads=4, intermediate_size=128)
    factorize(patch, SVD(rank=8, include_embeddings=True, min_rank=1), example_inputs=x)
    assert "vit.embeddings.patch_embeddings.projection" in {row["layer"] for row in report_of(patch, "factorize")["layers"]}


def test_svd_on_nn_transformer_encoder_skips_the_weights_its_parent_reads():
    import zoo

    model = zoo.build("transformer", input_size=8, num_classes=3, dim=64, heads=4, depth=1).eval()
    ids = torch.randint(0, zoo.LEVELS, (2, 16))
    with pytest.warns(UserWarning, match="factorized no layer"):
        factorize(model, SVD(rank=8), example_inputs=ids)
    skipped = {row["layer"]: row["reason"] for row in report_of(model, "factorize")["skipped"]}
    assert "reads out_proj's weight directly" in skipped["encoder.layers.0.self_attn.out_proj"]
    assert model(ids).shape == (2, 3)
