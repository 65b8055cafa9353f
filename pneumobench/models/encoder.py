"""The ResNet encoder from segmentation-models-pytorch and its pretrained weights.

``encoder_weights`` is ``None`` (random), ``"imagenet"`` (smp's download from the model hub,
which works online or from the hub cache) or a path to a state dict file (``.pth``/``.pt``
loaded with ``weights_only=True``, or ``.safetensors``). Classifier keys are dropped and any
mismatch is reported key by key. ``weights_fingerprint`` names the weights a run starts from
for the store key: the hash of a file's contents, so replacing the file trains again.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from segmentation_models_pytorch.encoders import get_encoder
from torch import nn

__all__ = ["EncoderWeightsError", "build_encoder", "hub_unreachable", "load_encoder_weights", "weights_fingerprint"]

CLASSIFIER_PREFIXES = ("fc.", "classifier.", "head.")
WRAPPER_PREFIXES = ("module.", "encoder.")
MAX_LISTED_KEYS = 20


class EncoderWeightsError(RuntimeError):
    """Pretrained encoder weights that cannot be found, read or matched to the encoder."""


def build_encoder(
    name: str, weights: str | None, *, stem_width: int | None = None, widths: tuple[int, ...] | None = None
) -> nn.Module:
    """smp's encoder ``name`` (depth 5) with ``weights`` loaded as described above; a timm
    ResNet ("tu-...") may be built with another ``stem_width`` and stage ``widths``."""
    shape: dict[str, Any] = {}
    if stem_width is not None:
        shape["stem_width"] = stem_width
    if widths is not None:
        shape["channels"] = tuple(widths)
    if weights is None:
        return get_encoder(name, weights=None, **shape)
    if weights == "imagenet":
        if shape:
            raise EncoderWeightsError(f"ImageNet weights of {name!r} do not fit its narrowed widths {shape}")
        return _imagenet_encoder(name)
    encoder = get_encoder(name, weights=None, **shape)
    load_encoder_weights(encoder, weights)
    return encoder


def weights_fingerprint(weights: str | None) -> str | None:
    """``None``, ``"imagenet"`` (smp's hub weights, fixed by smp's version) or ``sha256:<hex>``
    of a weights file's contents."""
    if weights is None or weights == "imagenet":
        return weights
    path = Path(weights)
    if not path.is_file():
        raise EncoderWeightsError(f"encoder weights file {path} does not exist")
    stat = path.stat()
    return _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """The file's hash, computed once per (path, size, modification time)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def hub_unreachable(timeout_s: float = 3.0) -> str | None:
    """Why the model hub cannot be reached now (offline mode, no route, no name resolution),
    or None when a connection to it opens within ``timeout_s``. Behind a proxy: None."""
    import huggingface_hub.constants as hub

    if hub.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    host = urlparse(hub.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError as error:
        return f"{host} cannot be reached ({type(error).__name__}: {error})"
    return None


@contextmanager
def _hub_offline() -> Iterator[None]:
    """The model hub in offline mode for this block: its cache answers at once, with no retries."""
    import huggingface_hub.constants as hub

    before, hub.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE, True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = before


def _imagenet_encoder(name: str) -> nn.Module:
    """smp's ImageNet encoder: from the hub cache first; from the hub only when it can be reached
    (unreachable, the hub's client retries for over a minute before it fails)."""
    unreachable = hub_unreachable()
    try:
        with _hub_offline() if unreachable is not None else nullcontext():
            return get_encoder(name, weights="imagenet")
    except Exception as error:  # the hub raises connection, offline and cache-miss errors
        why = f"{unreachable}, and its cache does not hold them" if unreachable else f"{type(error).__name__}: {error}"
        raise EncoderWeightsError(_imagenet_missing(name, why)) from error


def _imagenet_missing(name: str, why: str) -> str:
    import huggingface_hub.constants as hub

    return (
        f"ImageNet weights for encoder {name!r} are not available: smp downloads them from "
        f"the Hugging Face model hub (smp-hub/{name}.imagenet) into its cache ({hub.HF_HUB_CACHE}), "
        f"and neither could provide them ({why}). Provide them in one of two ways: (1) run once "
        "with network access so the hub cache holds them (later runs work offline, also with "
        "HF_HUB_OFFLINE=1), or copy such a cache and point HF_HOME at it; (2) give a state dict "
        "file, e.g. torchvision's resnet34-333f7ec4.pth (the paper's weights) or a .safetensors "
        "file: --pb-encoder-weights PATH in pytest, --encoder-weights PATH in pneumobench run and runs."
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise EncoderWeightsError(f"encoder weights file {path} does not exist")
    state: Any
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        elif path.suffix in (".pth", ".pt", ".bin"):
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise EncoderWeightsError(
                f"encoder weights file {path}: unknown format {path.suffix!r} "
                "(expected .pth, .pt, .bin or .safetensors)"
            )
    except EncoderWeightsError:
        raise
    except Exception as error:
        raise EncoderWeightsError(f"encoder weights file {path} cannot be read: {error}") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EncoderWeightsError(f"encoder weights file {path} does not hold a state dict of tensors")
    return state


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in WRAPPER_PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    return {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIXES)}


def _listed(kind: str, keys: list[str]) -> list[str]:
    lines = [f"  {kind}: {key}" for key in keys[:MAX_LISTED_KEYS]]
    if len(keys) > MAX_LISTED_KEYS:
        lines.append(f"  ... and {len(keys) - MAX_LISTED_KEYS} more {kind} keys")
    return lines


def load_encoder_weights(encoder: nn.Module, path: str | os.PathLike) -> None:
    """Load a state dict file into ``encoder``; raise listing every mismatched key."""
    path = Path(path)
    state = _strip_prefixes(_read_state_dict(path))
    expected = encoder.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        f"{key} (file {tuple(state[key].shape)}, encoder {tuple(expected[key].shape)})"
        for key in set(state) & set(expected)
        if state[key].shape != expected[key].shape
    )
    if missing or unexpected or wrong_shape:
        lines = [f"encoder weights file {path} does not match the encoder:"]
        lines += _listed("missing", missing) + _listed("unexpected", unexpected)
        lines += _listed("shape mismatch", wrong_shape)
        raise EncoderWeightsError("\n".join(lines))
    encoder.load_state_dict(state)
