"""Models: shapes, every Table 6 combination, the parameter claim, weights, freezing, extension."""

import dataclasses
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from segmentation_models_pytorch.encoders import get_encoder
from torch import nn

from pneumobench.experiment.config import ExperimentConfig, ModelConfig, config_name
from pneumobench.models import (
    EncoderWeightsError,
    InputSizeError,
    build_model,
    count_parameters,
    freeze_encoder,
    unfreeze_encoder,
)
from pneumobench.models.extensions import ATTENTIONS, CENTER_BLOCKS, HEADS, register_attention
from pneumobench.papers.viel_orhan_2020.modifications import MODIFICATIONS, modification, table6_rows


def seeded_model(config, seed=0):
    torch.manual_seed(seed)
    return build_model(config)


@pytest.fixture(scope="module")
def baseline():
    return seeded_model(ModelConfig())


@pytest.mark.parametrize("size", [64, 128, 256])
def test_shapes_eval_batch_1_and_train_batch_2(baseline, size):
    baseline.eval()
    with torch.no_grad():
        mask, cls = baseline(torch.randn(1, 3, size, size))
    assert mask.shape == (1, 1, size, size) and cls.shape == (1,)
    baseline.train()
    mask, cls = baseline(torch.randn(2, 3, size, size))
    assert mask.shape == (2, 1, size, size) and cls.shape == (2,)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((1, 3, 100, 64), "input size 100x64 is not a multiple of 32"),
        ((1, 1, 64, 64), "expected input of shape (N,3,H,W)"),
        ((3, 64, 64), "expected input of shape (N,3,H,W)"),
    ],
)
def test_input_the_encoder_cannot_take(baseline, shape, message):
    with pytest.raises(InputSizeError) as info:
        baseline(torch.randn(*shape))
    assert message in str(info.value)


@pytest.mark.parametrize("row", table6_rows(), ids=config_name)
def test_every_table6_combination_runs_forward_and_backward(row):
    config = ExperimentConfig().with_modifications(*row)
    model = seeded_model(config).train()
    mask, cls = model(torch.randn(2, 3, 64, 64))
    (mask.mean() + cls.mean()).backward()
    assert mask.shape == (2, 1, 64, 64) and cls.shape == (2,)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("hypercolumns", [False, True])
def test_decoder_projects_before_upsampling_as_the_authors_upsample_before_projecting(hypercolumns):
    """The decoder's last steps, projection to one channel then x2 bilinear upsampling, are the
    authors' upsampling then projection (both linear, bilinear weights summing to 1)."""
    torch.manual_seed(0)
    config = dataclasses.replace(ModelConfig(encoder_weights=None), hypercolumns=hypercolumns)
    model = build_model(config).eval()
    decoder = model.decoder
    center = torch.randn(2, model.center.out_channels, 2, 2)
    skips = [torch.randn(2, c, 4 * 2**i, 4 * 2**i) for i, c in enumerate((256, 128, 64, 64))]
    with torch.no_grad():
        ours = decoder(center, skips)
        x, outputs = center, []
        for layer, skip in zip(decoder.layers, skips):
            x = layer(x, skip)
            outputs.append(x)
        if hypercolumns:
            x = torch.cat([F.interpolate(o, size=x.shape[-2:], mode="bilinear", align_corners=True) for o in outputs[:-1]]
                          + [x], dim=1)
        upsampled = F.interpolate(decoder.global_layer(x), scale_factor=2, mode="bilinear", align_corners=True)
        authors = decoder.final_conv(upsampled)
    assert ours.shape == authors.shape == (2, 1, 64, 64)
    torch.testing.assert_close(ours, authors, rtol=1e-4, atol=1e-5)


def test_modifications_change_the_architecture():
    def build(*mods):
        return build_model(ExperimentConfig().with_modifications(*mods))

    assert type(build("aspp").center).__name__ == "ASPPCenter"
    assert type(build("scse").decoder.layers[0].attention_in).__name__ == "SCSEModule"
    assert build("hypercolumns").decoder.global_layer[0].in_channels == 4 * 64
    assert build().decoder.global_layer[0].in_channels == 64


def test_aspp_is_lighter_by_about_800k_parameters():
    base = count_parameters(build_model(ModelConfig()))
    aspp = count_parameters(build_model(ExperimentConfig().with_modifications("aspp")))
    assert 600_000 <= base - aspp <= 1_000_000


def test_count_parameters_trainable_only():
    model = seeded_model(ModelConfig())
    total = count_parameters(model)
    freeze_encoder(model)
    encoder_frozen = sum(
        p.numel() for m in model.encoder.modules() if not isinstance(m, nn.BatchNorm2d)
        for p in m.parameters(recurse=False)
    )
    assert count_parameters(model, trainable_only=True) == total - encoder_frozen


def test_freeze_keeps_encoder_batchnorm_trainable_and_unfreeze_restores():
    model = seeded_model(ModelConfig())
    freeze_encoder(model)
    for module in model.encoder.modules():
        for param in module.parameters(recurse=False):
            assert param.requires_grad == isinstance(module, nn.BatchNorm2d)
    assert all(p.requires_grad for p in model.decoder.parameters())
    unfreeze_encoder(model)
    assert all(p.requires_grad for p in model.parameters())


def test_same_seed_same_weights_other_seed_differs():
    a, b, c = (seeded_model(ModelConfig(), seed) for seed in (1, 1, 2))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.decoder.final_conv.weight, c.decoder.final_conv.weight)


def test_bf16_autocast_and_channels_last_on_cpu():
    model = seeded_model(ModelConfig()).eval().to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64).to(memory_format=torch.channels_last)
    with torch.no_grad():
        reference, _ = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mask, cls = model(x)
    assert mask.dtype == torch.bfloat16 and mask.shape == (2, 1, 64, 64)
    assert torch.isfinite(mask).all() and torch.isfinite(cls).all()
    relative_error = (mask.float() - reference).norm() / reference.norm()
    assert relative_error < 0.05  # bf16 keeps about 3 significant digits per operation


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_encoder_weights_from_file_change_the_outputs(tmp_path, suffix):
    torch.manual_seed(123)
    donor = get_encoder("resnet34", weights=None)
    state = {**donor.state_dict(), "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    path = tmp_path / f"resnet34{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    random_model = seeded_model(ModelConfig()).eval()
    loaded = seeded_model(ModelConfig(encoder_weights=str(path))).eval()
    assert all(torch.equal(v, loaded.encoder.state_dict()[k]) for k, v in donor.state_dict().items())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(random_model(x)[0], loaded(x)[0])


def test_mismatched_weights_file_is_reported_key_by_key(tmp_path):
    state = get_encoder("resnet34", weights=None).state_dict()
    del state["layer1.0.conv1.weight"]
    state["layer9.weight"] = torch.zeros(1)
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(EncoderWeightsError) as info:
        build_model(ModelConfig(encoder_weights=str(path)))
    message = str(info.value)
    assert str(path) in message
    assert "missing: layer1.0.conv1.weight" in message
    assert "unexpected: layer9.weight" in message
    assert "shape mismatch: conv1.weight (file (64, 3, 3, 3), encoder (64, 3, 7, 7))" in message


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("absent.pth", None, "does not exist"),
        ("weights.txt", b"x", "unknown format '.txt'"),
        ("garbage.pth", b"not a checkpoint", "cannot be read"),
    ],
)
def test_unreadable_weights_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EncoderWeightsError, match=message):
        build_model(ModelConfig(encoder_weights=str(path)))


def test_offline_imagenet_without_cache_says_how_to_provide_weights(tmp_path):
    code = (
        "from pneumobench.models import build_model; from pneumobench.experiment.config import ModelConfig;"
        "build_model(ModelConfig(encoder_weights='imagenet'))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert "EncoderWeightsError" in result.stderr
    assert "ImageNet weights for encoder 'resnet34' are not available" in result.stderr
    assert "resnet34-333f7ec4.pth" in result.stderr and str(tmp_path / "hub") in result.stderr


def test_imagenet_weights_in_the_hub_cache_load_at_once_when_the_hub_cannot_be_reached(tmp_path, monkeypatch):
    """Once an unreachable hub cost about 75 s of retries. The cache holds resnet18's weights
    (made here); this machine cannot reach the hub, so they load from the cache, in offline mode."""
    import huggingface_hub.constants as hub
    from safetensors.torch import save_file
    from segmentation_models_pytorch.encoders import encoders, get_encoder

    from pneumobench.models.encoder import build_encoder, hub_unreachable

    settings = encoders["resnet18"]["pretrained_settings"]["imagenet"]
    snapshot = tmp_path / f"models--{settings['repo_id'].replace('/', '--')}" / "snapshots" / settings["revision"]
    snapshot.mkdir(parents=True)
    torch.manual_seed(5)
    cached = {k: v.contiguous() for k, v in get_encoder("resnet18", weights=None).state_dict().items()}
    save_file(cached, str(snapshot / "model.safetensors"))
    (snapshot / "config.json").write_text("{}")
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr("pneumobench.models.encoder.hub_unreachable", lambda: "the test's hub is unreachable")
    encoder = build_encoder("resnet18", "imagenet")
    assert all(torch.equal(encoder.state_dict()[k], v) for k, v in cached.items())
    assert hub.HF_HUB_OFFLINE is False  # offline for the load only
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    assert hub_unreachable() == "HF_HUB_OFFLINE is set"


def test_without_cache_an_unreachable_hub_fails_at_once_with_no_retries(tmp_path, monkeypatch):
    """No connection is attempted (each attempt was retried five times)."""
    import socket

    import huggingface_hub.constants as hub

    from pneumobench.models.encoder import build_encoder

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr("pneumobench.models.encoder.hub_unreachable", lambda: "huggingface.co cannot be reached")
    connections = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: connections.append(address))
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *args, **kwargs: connections.append(host) or [])
    with pytest.raises(EncoderWeightsError, match="huggingface.co cannot be reached, and its cache does not hold them"):
        build_encoder("resnet18", "imagenet")
    assert connections == []


class GatedAttention(nn.Module):
    """A researcher's block, defined outside the package: a learned per-channel gate."""

    def __init__(self, channels):
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        return x * torch.sigmoid(self.gate) * 2


def test_new_attention_block_and_modification_without_touching_the_core():
    register_attention("test_gate")(GatedAttention)

    @modification("test_gate")
    def gate(config):
        return config.replace_model(attention="test_gate")

    try:
        config = ExperimentConfig().with_modifications("test_gate", "aspp")
        model = seeded_model(config).train()
        assert isinstance(model.decoder.layers[0].attention_in, GatedAttention)
        mask, cls = model(torch.randn(2, 3, 64, 64))
        (mask.mean() + cls.mean()).backward()
        assert model.decoder.layers[0].attention_in.gate.grad is not None
    finally:
        ATTENTIONS.unregister("test_gate")
        MODIFICATIONS.unregister("test_gate")


# Driven by the registries (like smp's model tester and timm's tests over list_models()): a
# newly registered block is tested here without writing a test.
SMALL = ModelConfig(encoder="resnet18", decoder_channels=16, center_channels=32, aspp_channels=32, cls_hidden=8)


@pytest.mark.parametrize("name", ATTENTIONS.names())
def test_every_registered_attention_keeps_the_shape(name):
    attention = ATTENTIONS.get(name)(24)
    x = torch.randn(2, 24, 8, 8)
    assert attention(x).shape == x.shape


@pytest.mark.parametrize(("block", "reduction", "squeeze"), [("scse", None, 2), ("scse", 4, 8), ("scse_cc", 8, 4)])
def test_attention_reduction_sets_the_channel_gates_squeeze(block, reduction, squeeze):
    """A 32-channel decoder's scSE squeezes to 32 / reduction channels (smp's 16 when unset)."""
    config = dataclasses.replace(SMALL, attention=block, decoder_channels=32, attention_reduction=reduction)
    attention = build_model(config).decoder.layers[-1].attention_out
    gate = attention.cSE if block == "scse" else attention.channel_gate
    assert gate[1].out_channels == squeeze


def test_attention_reduction_passes_over_blocks_that_take_none():
    config = dataclasses.replace(SMALL, attention="none", attention_reduction=4)
    assert isinstance(build_model(config).decoder.layers[0].attention_in, nn.Identity)


@pytest.mark.parametrize("name", CENTER_BLOCKS.names())
def test_every_registered_center_block_gives_its_out_channels(name):
    block = CENTER_BLOCKS.get(name)(64, SMALL).eval()
    with torch.no_grad():
        out = block(torch.randn(2, 64, 4, 4))
    assert out.shape == (2, block.out_channels, 4, 4)


@pytest.mark.parametrize("name", HEADS.names())
def test_every_registered_head_maps_features_to_one_logit_per_image(name):
    head = HEADS.get(name)(64, SMALL)
    assert head(torch.randn(3, 64, 4, 4)).shape == (3,)


@pytest.mark.parametrize(("registry", "field"), [(ATTENTIONS, "attention"), (CENTER_BLOCKS, "center"), (HEADS, "head")])
def test_every_registered_block_builds_a_model_with_the_right_outputs(registry, field):
    for name in registry.names():
        model = build_model(dataclasses.replace(SMALL, **{field: name}))
        mask, cls = model(torch.randn(2, 3, 64, 64))
        assert mask.shape == (2, 1, 64, 64) and cls.shape == (2,), name
