"""Network: parameter counts, shapes of every variant, gradients, split forward, torchvision loading."""

from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")

from realtime.config import ModelConfig, model_preset  # noqa: E402
from realtime.model import FramePath, ResNet18Encoder, TryOnNet, load_torchvision_resnet18  # noqa: E402

# torchvision resnet18 has 11,689,512 parameters; its fc layer has 512*1000+1000 = 513,000.
TORCHVISION_RESNET18_FEATURES = 11_689_512 - 513_000


def test_encoder_parameter_count_equals_torchvision_feature_extractor():
    enc = ResNet18Encoder(3, ModelConfig())
    assert sum(p.numel() for p in enc.parameters()) == TORCHVISION_RESNET18_FEATURES  # 11.18 M
    enc4 = ResNet18Encoder(4, ModelConfig())
    assert sum(p.numel() for p in enc4.parameters()) == TORCHVISION_RESNET18_FEATURES + 64 * 7 * 7


VARIANTS = [dict(), dict(fusion="add"), dict(fusion="daf_simple"), dict(fusion="none"), dict(semantic=False)]


@pytest.mark.parametrize("size", [224, 448])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) or "paper")
def test_output_shapes_every_variant(size, variant):
    cfg = ModelConfig(category="tie" if size == 448 else "glasses", input_size=size, width_mult=0.25, **variant)
    net = TryOnNet(cfg).eval()
    with torch.no_grad():
        hm, sem = net(torch.randn(1, 3, size, size), torch.randn(1, 4, size, size))
    assert hm.shape == (1, 4, size, size)
    assert float(hm.min()) >= 0.0 and float(hm.max()) <= 1.0
    if cfg.semantic:
        assert sem.shape == (1, cfg.num_classes, size, size)
    else:
        assert sem is None


def test_paper_network_shapes_at_224():
    cfg = model_preset("paper", "glasses")
    net = TryOnNet(cfg).eval()
    with torch.no_grad():
        f_f = net.encode_foreground(torch.randn(1, 4, 224, 224))
        hm, sem = net.forward_frame(torch.randn(1, 3, 224, 224), f_f)
    assert f_f.shape == (1, 512, 7, 7)
    assert hm.shape == (1, 4, 224, 224) and sem.shape == (1, 12, 224, 224)


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_every_parameter_gets_a_gradient(variant):
    cfg = ModelConfig(width_mult=0.125, input_size=64, **variant)
    net = TryOnNet(cfg).train()
    hm, sem = net(torch.randn(2, 3, 64, 64), torch.randn(2, 4, 64, 64))
    loss = hm.mean() + (sem.mean() if sem is not None else 0)
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_split_forward_equals_full_forward_and_frame_path():
    cfg = ModelConfig(width_mult=0.25, input_size=96)
    net = TryOnNet(cfg).eval()
    bg, fg = torch.randn(2, 3, 96, 96), torch.randn(2, 4, 96, 96)
    with torch.no_grad():
        full, _ = net(bg, fg)
        f_f = net.encode_foreground(fg)
        split, _ = net.forward_frame(bg, f_f)
        frame_only = FramePath(net)(bg, f_f)
    assert torch.allclose(full, split, atol=1e-6)
    assert torch.allclose(full, frame_only, atol=1e-6)


def test_foreground_changes_output_unless_fusion_none():
    for fusion, should_change in (("daf", True), ("none", False)):
        torch.manual_seed(0)
        net = TryOnNet(ModelConfig(width_mult=0.125, input_size=64, fusion=fusion)).eval()
        bg = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            a, _ = net(bg, torch.randn(1, 4, 64, 64))
            b, _ = net(bg, torch.randn(1, 4, 64, 64))
        assert (not torch.allclose(a, b)) == should_change


def _torchvision_layout_state(seed: int = 0) -> dict:
    """A state dict with torchvision resnet18's exact key set and shapes (incl. fc)."""
    torch.manual_seed(seed)
    state = {k: torch.randn_like(v.float()) if v.is_floating_point() else v.clone()
             for k, v in ResNet18Encoder(3, ModelConfig()).state_dict().items()}
    state["fc.weight"] = torch.randn(1000, 512)
    state["fc.bias"] = torch.randn(1000)
    return state


def test_load_torchvision_state_dict_into_both_encoders(tmp_path):
    state = _torchvision_layout_state()
    enc3 = ResNet18Encoder(3, ModelConfig())
    assert load_torchvision_resnet18(enc3, state) == []
    assert torch.equal(enc3.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    enc4 = ResNet18Encoder(4, ModelConfig())
    path = tmp_path / "resnet18.pth"
    torch.save({"module." + k: v for k, v in state.items()}, path)
    assert load_torchvision_resnet18(enc4, path) == []
    w = enc4.conv1.weight
    assert torch.equal(w[:, :3], state["conv1.weight"])
    assert torch.allclose(w[:, 3], state["conv1.weight"].mean(dim=1))


def test_load_torchvision_refuses_wrong_width():
    enc = ResNet18Encoder(3, ModelConfig(width_mult=0.5))
    with pytest.raises(ValueError, match="conv1.weight"):
        load_torchvision_resnet18(enc, _torchvision_layout_state())


def test_config_round_trip_and_validation():
    cfg = ModelConfig(category="hat", width_mult=0.5, fusion="add")
    again = ModelConfig.from_dict(cfg.to_dict())
    assert dataclasses.asdict(again) == dataclasses.asdict(cfg) and again.hash() == cfg.hash()
    with pytest.raises(ValueError, match="fusion"):
        ModelConfig(fusion="concat")
    with pytest.raises(ValueError, match="category"):
        ModelConfig(category="shoes")
    with pytest.raises(ValueError, match="unknown config key"):
        ModelConfig.from_dict({"widht_mult": 1})
