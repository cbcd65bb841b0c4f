"""The keypoint-hallucination network (paper Sec. 3, SPEC section 1), in one file.

    background (N,3,S,S) --E_b--> F_b (N,512,S/32,S/32) + skips (layer1..3)
    foreground (N,4,S,S) --E_f--> F_f (N,512,S/32,S/32)          [run once per accessory]
    F_fuse = DAF(F_b, F_f)
    D_sm(F_b, skips)  -> stage features s1..s5 (+ semantic logits, training only)
    D_hm(F_fuse, skips, s1..s5) -> 4 heatmaps (N,4,S,S)

The forward pass is split so the live loop encodes the accessory once:
``encode_foreground(fg) -> F_f`` and ``forward_frame(bg, F_f) -> (heatmaps, sem_logits)``.
Parameter names of both encoders follow torchvision's ``resnet18`` so its state dict
loads directly (:func:`load_torchvision_resnet18`).

``ModelConfig`` is defined in ``realtime.config`` (importable without torch) and
re-exported here.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from realtime.config import ModelConfig

__all__ = ["ModelConfig", "TryOnNet", "ResNet18Encoder", "load_torchvision_resnet18"]


# --------------------------------------------------------------------------------------
# Encoder: torchvision ResNet18 layout (He et al. 2016), channels scaled by width_mult
# --------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    """torchvision's BasicBlock (names conv1/bn1/conv2/bn2/downsample kept for loading)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class ResNet18Encoder(nn.Module):
    """ResNet18 feature extractor (no avgpool/fc), returning layer1..layer4 outputs."""

    def __init__(self, in_channels: int, cfg: ModelConfig) -> None:
        super().__init__()
        c = [cfg.channels(b) for b in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, c[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(c[0], c[0], 1), BasicBlock(c[0], c[0], 1))
        self.layer2 = nn.Sequential(BasicBlock(c[0], c[1], 2), BasicBlock(c[1], c[1], 1))
        self.layer3 = nn.Sequential(BasicBlock(c[1], c[2], 2), BasicBlock(c[2], c[2], 1))
        self.layer4 = nn.Sequential(BasicBlock(c[2], c[3], 2), BasicBlock(c[3], c[3], 1))
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, S/4, S/4)
        f1 = self.layer1(x)  # (N, 64, S/4)
        f2 = self.layer2(f1)  # (N, 128, S/8)
        f3 = self.layer3(f2)  # (N, 256, S/16)
        f4 = self.layer4(f3)  # (N, 512, S/32)
        return [f1, f2, f3, f4]


def load_torchvision_resnet18(encoder: ResNet18Encoder, state: dict[str, torch.Tensor] | str | Path) -> list[str]:
    """Load a torchvision-layout ResNet18 state dict (or a file of one) into ``encoder``.

    ``fc.*`` is dropped; a ``module.``/``backbone.``/``encoder.`` prefix is stripped. For
    a 4-channel encoder the first conv's RGB filters are copied and the mask channel is
    initialised with their mean over RGB, so the mask starts with a comparable response.

    Returns:
        The encoder keys that were not in ``state`` (empty for a full match).

    Raises:
        ValueError: a tensor's shape does not fit (message names the key), or the
            width multiplier is not 1.
    """
    if isinstance(state, (str, Path)):
        path = Path(state)
        if not path.is_file():
            raise FileNotFoundError(f"ResNet18 weights not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    cleaned: dict[str, torch.Tensor] = {}
    for key, val in state.items():
        for prefix in ("module.", "backbone.", "encoder."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        if key.startswith("fc."):
            continue
        cleaned[key] = val
    own = encoder.state_dict()
    conv = cleaned.get("conv1.weight")
    if conv is not None and own["conv1.weight"].shape[1] == 4 and conv.shape[1] == 3:
        cleaned["conv1.weight"] = torch.cat([conv, conv.mean(dim=1, keepdim=True)], dim=1)
    for key, val in cleaned.items():
        if key in own and own[key].shape != val.shape:
            raise ValueError(f"ResNet18 weight {key!r}: shape {tuple(val.shape)} does not fit "
                             f"{tuple(own[key].shape)} (width_mult must be 1.0 to load torchvision weights)")
    unexpected = sorted(set(cleaned) - set(own))
    if unexpected:
        raise ValueError(f"unexpected ResNet18 keys: {unexpected[:5]}")
    missing = encoder.load_state_dict(cleaned, strict=False).missing_keys
    return list(missing)


# --------------------------------------------------------------------------------------
# Fusion: DAF (CBAM + 1x1 conv gate), DAF(s), add, none
# --------------------------------------------------------------------------------------

class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al. 2018): channel then spatial gate."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Sequential(nn.Conv2d(2, 1, 7, padding=3, bias=False), nn.BatchNorm2d(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))
        x = x * gate
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class Fusion(nn.Module):
    """F_fuse = M * F_b + (1 - M) * F_f (paper Eq. 6) or an ablation variant."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.kind = cfg.fusion
        c = cfg.feature_channels
        if self.kind == "daf":
            self.cbam = CBAM(c, cfg.cbam_reduction)
        if self.kind in ("daf", "daf_simple"):
            self.gate = nn.Conv2d(c, c, 1)

    def forward(self, f_b: torch.Tensor, f_f: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "none" or f_f is None:
            return f_b
        u = f_b + f_f
        if self.kind == "add":
            return u
        if self.kind == "daf":
            u = self.cbam(u)
        m = torch.sigmoid(self.gate(u))
        return m * f_b + (1.0 - m) * f_f


# --------------------------------------------------------------------------------------
# Decoder: GCA-Matting's shortcut decoder, blocks [2, 3, 3, 2] (Li & Lu 2020)
# --------------------------------------------------------------------------------------

def _sn(module: nn.Module, enabled: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


class DecoderBlock(nn.Module):
    """Residual block; the first block of a stage upsamples x2 (ConvTranspose k4 s2 p1)."""

    def __init__(self, cin: int, cout: int, upsample: bool, sn: bool) -> None:
        super().__init__()
        self.upsample = upsample
        if upsample:
            self.conv1 = _sn(nn.ConvTranspose2d(cin, cin, 4, 2, 1, bias=False), sn)
            self.bn1 = nn.BatchNorm2d(cin)
            self.conv2 = _sn(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), sn)
            self.shortcut = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                          _sn(nn.Conv2d(cin, cout, 1, bias=False), sn), nn.BatchNorm2d(cout))
        else:
            self.conv1 = _sn(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), sn)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = _sn(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), sn)
            self.shortcut = nn.Identity()
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = self.shortcut(x)
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + idt)


class Decoder(nn.Module):
    """Four residual stages (x2 each) with encoder skips added after stages 1-3, then
    stage 5: ConvTranspose x2 -> BN -> LeakyReLU (features) -> conv3x3 (output)."""

    def __init__(self, cfg: ModelConfig, out_channels: int) -> None:
        super().__init__()
        chans = [cfg.channels(b) for b in (512, 256, 128, 64, 32)]
        self.stages = nn.ModuleList()
        for i, nblocks in enumerate(cfg.decoder_blocks):
            blocks = [DecoderBlock(chans[i], chans[i + 1], True, cfg.spectral_norm)]
            blocks += [DecoderBlock(chans[i + 1], chans[i + 1], False, cfg.spectral_norm) for _ in range(nblocks - 1)]
            self.stages.append(nn.Sequential(*blocks))
        c = chans[-1]
        self.stage5 = nn.Sequential(_sn(nn.ConvTranspose2d(c, c, 4, 2, 1, bias=False), cfg.spectral_norm),
                                    nn.BatchNorm2d(c), nn.LeakyReLU(0.2, inplace=True))
        self.head = nn.Conv2d(c, out_channels, 3, 1, 1)

    def features(self, x: torch.Tensor, skips: list[torch.Tensor],
                 extra: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Stage outputs s1..s5 (before the head). ``extra`` (the semantic decoder's
        stage outputs) is added stage by stage, after the skips."""
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < 3:
                x = x + skips[2 - i]  # layer3 after stage 1, layer2 after 2, layer1 after 3
            if extra is not None:
                x = x + extra[i]
            feats.append(x)
        x = self.stage5(x)
        if extra is not None:
            x = x + extra[4]
        feats.append(x)
        return feats


# --------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------

class TryOnNet(nn.Module):
    """Background-oriented UNet with DAF foreground injection and a semantic decoder."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.bg_encoder = ResNet18Encoder(3, cfg)
        self.fg_encoder = ResNet18Encoder(4, cfg) if cfg.fusion != "none" else None
        self.fusion = Fusion(cfg)
        self.hm_decoder = Decoder(cfg, 4)
        self.sm_decoder = Decoder(cfg, cfg.num_classes) if cfg.semantic else None

    def encode_foreground(self, fg: torch.Tensor) -> torch.Tensor:
        """F_f for a normalised accessory (N, 4, S, S) -> (N, C, S/32, S/32).

        For the ``none`` fusion there is no foreground encoder; a zero tensor of the
        right shape is returned so every variant has the same per-frame signature.
        """
        if self.fg_encoder is None:
            n = fg.shape[0]
            s = self.cfg.feature_size
            return fg.new_zeros((n, self.cfg.feature_channels, s, s))
        return self.fg_encoder(fg)[-1]

    def forward_frame(self, bg: torch.Tensor, f_f: torch.Tensor, semantic_logits: bool = True,
                      fp32_head: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-frame path: background (N, 3, S, S) + cached F_f -> (heatmaps, semantic logits).

        Args:
            bg: normalised background.
            f_f: foreground features from :meth:`encode_foreground`.
            semantic_logits: compute the semantic head (training only). The semantic
                decoder's stage features are computed either way, since D_hm adds them.
            fp32_head: apply the heatmap activation in float32 (for a half-precision network:
                the FP16 rule of :mod:`engine_build.fp16`; heatmaps near 1 have a step of 2^-11
                in half, which the soft-argmax's beta = 1000 turns into a 0.5 logit error).

        Returns:
            heatmaps (N, 4, S, S) in [0, 1]; semantic logits (N, C, S, S) or None.
        """
        f1, f2, f3, f_b = self.bg_encoder(bg)
        skips = [f1, f2, f3]
        fused = self.fusion(f_b, f_f if self.fg_encoder is not None else None)
        sem = extra = None
        if self.sm_decoder is not None:
            extra = self.sm_decoder.features(f_b, skips)
            if semantic_logits:
                sem = self.sm_decoder.head(extra[-1])
        hm = self.hm_decoder.head(self.hm_decoder.features(fused, skips, extra)[-1])
        if fp32_head:
            hm = hm.float()
        if self.cfg.heatmap_activation == "sigmoid":
            hm = torch.sigmoid(hm)
        else:
            hm = 0.5 * (torch.tanh(hm) + 1.0)
        return hm, sem

    def forward(self, bg: torch.Tensor, fg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Full network: (background, foreground) -> (heatmaps, semantic logits)."""
        return self.forward_frame(bg, self.encode_foreground(fg))


class FramePath(nn.Module):
    """The per-frame graph for export: (background, F_f) -> heatmaps only.

    The semantic decoder is kept up to its stage features (D_hm adds them); its head,
    which only produces training-time logits, is not part of this graph.
    """

    def __init__(self, net: TryOnNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, bg: torch.Tensor, f_f: torch.Tensor) -> torch.Tensor:
        return self.net.forward_frame(bg, f_f, semantic_logits=False)[0]


class ForegroundPath(nn.Module):
    """The foreground graph for export: normalised RGBA accessory -> F_f."""

    def __init__(self, net: TryOnNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, fg: torch.Tensor) -> torch.Tensor:
        return self.net.encode_foreground(fg)
