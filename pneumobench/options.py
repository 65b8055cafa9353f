"""Options shared by the pytest plugin (``--pb-NAME``) and the CLI (``pneumobench runs --NAME``).

Each is defined once: its help, default and parser, so both entry points accept the same
values and reject the same mistakes with the same one-line message. The plugin reads them
raw and parses them in ``session.parse_options`` (a ``pytest.UsageError`` on a bad value);
the CLI uses the parser as the argparse type (exit 2). Choices come from the registries, so
a registered profile or executor is offered without editing this module.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "RUN_OPTIONS",
    "Option",
    "OptionError",
    "add_options",
    "argparse_type",
    "encoder_weights",
    "parse_count",
    "parse_encoder_weights",
    "parse_gpu_share",
    "parse_option",
    "profiles_help",
]


class OptionError(ValueError):
    """A value an option does not accept; the message says what is allowed."""


def parse_count(minimum: int, what: str) -> Callable[[str], int]:
    """A parser of an integer >= ``minimum`` (``what`` says what to give)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise OptionError(f"{text!r} is not an integer: give {what}") from None
        if value < minimum:
            raise OptionError(f"{value}: give {what}")
        return value

    return parse


def parse_gpu_share(text: str) -> float:
    """GPUs one run asks for: a share of one card (0 < x <= 1; 0.5 packs two runs per card) or
    a whole number of cards (Ray cannot give a task 1.5 cards)."""
    allowed = "give a share of one GPU (0 < x <= 1, e.g. 0.5) or a whole number of GPUs (1, 2)"
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"{text!r} is not a number: {allowed}") from None
    if not (0 < value <= 1 or (value > 1 and value.is_integer())):
        raise OptionError(f"{value:g}: {allowed}")
    return value


def parse_encoder_weights(text: str) -> str:
    """``none``, ``imagenet`` or a state dict file that exists (made absolute, so workers started
    elsewhere find it)."""
    if text in ("none", "imagenet"):
        return text
    path = Path(text)
    if not path.is_file():
        raise OptionError(f"{text}: no such file: give none, imagenet or a state dict file (.pth, .pt, .safetensors)")
    return str(path.resolve())


def encoder_weights(text: str) -> str | None:
    """The parsed ``encoder-weights`` option as ``ModelConfig.encoder_weights`` holds it (``none``: None)."""
    return None if text == "none" else text


def profiles_help() -> str:
    from pneumobench.experiment.profiles import PROFILES

    return f"the protocol: {', '.join(PROFILES.names())} (default smoke: CPU, synthetic data; docs: Protocol)"


def _executor_names() -> list[str]:
    from pneumobench.runs.executors import EXECUTORS

    return EXECUTORS.names()


def _executors_help() -> str:
    names = _executor_names()
    return f"where runs train: {', '.join(names)} (default local: worker processes here; ray: pip install -e '.[ray]')"


@dataclass(frozen=True)
class Option:
    """One shared option: ``name`` without its prefix; ``help`` text or a function that makes it
    (from a registry); ``parse`` turns the text into the value (None: kept as text)."""

    name: str
    help: str | Callable[[], str]
    default: Any = None
    parse: Callable[[str], Any] | None = None
    choices: Callable[[], list[str]] | None = None  # the registered names (argparse checks them; the plugin too)

    def help_text(self) -> str:
        return self.help if isinstance(self.help, str) else self.help()


RUN_OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        Option("profile", profiles_help, default="smoke"),
        Option(
            "data", "a prepared dataset (pneumobench data prepare); default: the profile's synthetic one", parse=Path
        ),
        Option("device", "auto (default), cpu, cuda or cuda:N", default="auto"),
        Option("executor", _executors_help, default="local", choices=_executor_names),
        Option(
            "workers",
            "runs trained in parallel by the local executor (default: 2 on the CPU, one per GPU)",
            parse=parse_count(1, "at least 1 process"),
        ),
        Option("ray-address", "with the ray executor: auto (the cluster this machine joined) or HOST:PORT"),
        Option(
            "gpus-per-run",
            "with the ray executor: GPUs each run asks for, a share of one card (0.5 packs two runs per card) "
            "or a whole number (default 1)",
            default=1.0,
            parse=parse_gpu_share,
        ),
        Option(
            "encoder-weights",
            "the encoder's starting weights: none, imagenet or a state dict file (.pth, .safetensors); "
            "default: the profile's",
            parse=parse_encoder_weights,
        ),
        Option(
            "checkpoint-dir",
            "checkpoint directory (default: beside the store); with Ray, storage every node shares, so a run "
            "whose node died resumes (a relative path is made absolute here, on the driver)",
            parse=lambda text: Path(text).resolve(),
        ),
    )
}


def argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` as an argparse ``type``: its ``OptionError`` becomes argparse's usage error (exit 2)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except OptionError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


def add_options(add: Callable[..., Any], prefix: str, *, parsed: bool, **defaults: Any) -> None:
    """Add every shared option through ``add`` (``parser.add_argument`` or pytest's
    ``group.addoption``) as ``prefix + name``. ``parsed``: the entry point converts values as
    it reads them (argparse); otherwise they arrive as text and ``parse_option`` converts them.
    ``defaults``: another default for an option (by name with ``_``)."""
    for option in RUN_OPTIONS.values():
        key = option.name.replace("-", "_")
        default = defaults.get(key, option.default)
        kwargs: dict[str, Any] = {"default": default, "help": option.help_text()}
        if parsed and option.parse is not None:
            kwargs["type"] = argparse_type(option.parse)
        if parsed and option.choices is not None:
            kwargs["choices"] = option.choices()
        add(f"{prefix}{option.name}", **kwargs)


def parse_option(name: str, value: Any) -> Any:
    """The shared option ``name``'s value parsed (a text from pytest; a default passes as it is)."""
    option = RUN_OPTIONS[name]
    if option.parse is None or not isinstance(value, str):
        return value
    return option.parse(value)
