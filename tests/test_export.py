"""``vmc export PROFILE --format lora``: the SVD cut of a U-Net profile, and bad input.

(Loading the files into diffusers / peft: tests/test_latent_backends.py for ZeroScope and
AnimateDiff, tests/test_wan_backend.py for Wan.) References here are independent of the export
code: the base weights from a fresh load of the model, the tuned ones from the profile, and
Eckart-Young's statement of the best rank-r error (the singular values' tail).
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from vmc_cli.store.profiles import ProfileStore


@pytest.fixture
def tiny_profile(run_cli, clip_path):
    r = run_cli("tune", clip_path, "-p", "a disc is moving", "--backend", "tiny", "--steps", "3", "--lr", "1e-2",
                "--name", "t")
    assert r.code == 0, r
    return "t"


def _changes(name: str) -> dict[str, torch.Tensor]:
    """W - W0 per tuned weight: the profile's weights against a fresh load of the base model."""
    from vmc_cli.models.plugins import get_backend

    backend = get_backend("tiny")
    backend.load(device="cpu")
    base = dict(backend.unet.named_parameters())
    tuned = ProfileStore().load(name, "weights.safetensors")
    return {n: (w.double() - base[n].detach().double()) for n, w in tuned.items()}


def test_full_rank_is_the_change_exactly(run_cli, tiny_profile, tmp_path):
    out = tmp_path / "m.safetensors"
    r = run_cli("export", tiny_profile, "-o", out, "--rank", "4096", "--json")
    assert r.code == 0, r
    report, lora = r.json(), load_file(out)
    changes = _changes(tiny_profile)
    assert report["layers"] == len(changes) and len(lora) == 2 * len(changes) and report["kept"] > 1 - 1e-9
    for name, delta in changes.items():
        key = "unet." + name[: -len(".weight")]
        product = lora[f"{key}.lora_B.weight"].double() @ lora[f"{key}.lora_A.weight"].double()
        assert torch.allclose(product, delta, atol=1e-6), name
        assert delta.abs().max() > 1e-4


def test_low_rank_keeps_what_eckart_young_says(run_cli, tiny_profile, tmp_path):
    """At rank 1 each layer's error is the tail of its singular values (the best possible), and the
    reported share is what the file's factors really keep of the whole change."""
    out = tmp_path / "m1.safetensors"
    r = run_cli("export", tiny_profile, "-o", out, "--rank", "1", "--json")
    assert r.code == 0, r
    report, lora = r.json(), load_file(out)
    assert report["rank"] == 1
    total = missed = 0.0
    for name, delta in _changes(tiny_profile).items():
        key = "unet." + name[: -len(".weight")]
        b, a = lora[f"{key}.lora_B.weight"].double(), lora[f"{key}.lora_A.weight"].double()
        assert b.shape[1] == a.shape[0] == 1
        error = float(((delta - b @ a) ** 2).sum())
        s = torch.linalg.svdvals(delta)
        assert error == pytest.approx(float((s[1:] ** 2).sum()), rel=1e-6, abs=1e-12)
        total, missed = total + float((delta ** 2).sum()), missed + error
    assert report["kept"] == pytest.approx(1 - missed / total, rel=1e-6)
    assert 0 < report["kept"] < 1


def test_the_human_report(run_cli, tiny_profile, tmp_path):
    r = run_cli("export", tiny_profile, "-o", tmp_path / "m.safetensors", "--rank", "2")
    assert r.code == 0, r
    assert r.stdout.startswith("exported t (") and "rank 2 by SVD" in r.stdout and "% of the change kept" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--format", "ckpt"], "--format 'ckpt' is not an export format"),
    (["--rank", "0"], "--rank 0: a LoRA's rank is at least 1"),
    (["-o", "{tmp}/m.pt"], "a LoRA file is written as .safetensors"),
    (["-o", "{tmp}/file.txt/m.safetensors"], "is not a folder"),
    (["-o", "{tmp}/a-folder.safetensors"], "is a folder"),
    (["-o", "/proc/vmc-export.safetensors"], "cannot write -o /proc/vmc-export.safetensors"),  # unwritable, even as root
])
def test_bad_input_is_one_line_and_writes_nothing(run_cli, tiny_profile, tmp_path, args, message):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "a-folder.safetensors").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = [] if "-o" in args else ["-o", str(tmp_path / "m.safetensors")]
    r = run_cli("export", tiny_profile, *out, *args)
    assert r.code != 0 and message in r.stderr, r
    assert len(r.stderr.strip().splitlines()) <= 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_unknown_profile_and_a_backend_without_a_lora_format(run_cli, tiny_profile, tmp_path, monkeypatch):
    out = tmp_path / "m.safetensors"
    r = run_cli("export", "nope", "-o", out)
    assert r.code != 0 and "nope" in r.stderr and not out.exists()
    from vmc_pixel.tiny import TinyBackend

    monkeypatch.setattr(TinyBackend, "lora_prefix", None)
    r = run_cli("export", tiny_profile, "-o", out)
    assert r.code == 1 and "backend 'tiny' has no LoRA format" in r.stderr and not out.exists(), r


def test_a_profile_with_no_two_d_weight_is_refused(run_cli, clip_path, tmp_path):
    r = run_cli("tune", clip_path, "-p", "a disc is moving", "--backend", "tiny", "--steps", "1", "--name", "n",
                "--target", r"temp_attentions.*norm.*\.bias$")
    assert r.code == 0, r
    r = run_cli("export", "n", "-o", tmp_path / "n.safetensors")
    assert r.code == 1 and "no 2-D weight a LoRA can hold" in r.stderr and not (tmp_path / "n.safetensors").exists()
