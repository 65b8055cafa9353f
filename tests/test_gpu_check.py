"""``bench --gpu-check`` refuses a machine without CUDA (the orchestration itself, shrunk to
the CPU, is checked in suites/test_throughput.py, which CI runs)."""

import pytest
import torch

from pneumobench.cli import main


def test_gpu_check_without_cuda_exits_2(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal path cannot be reached")
    assert main(["bench", "--gpu-check"]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err
