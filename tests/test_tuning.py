"""Tuning trains exactly the chosen parameters and nothing else."""

import re

import pytest
import torch

from vmc_cli.errors import VmcError
from vmc_cli.models.plugins import get_backend
from vmc_cli.method.tuning import TuneConfig, select_parameters, tune


@pytest.fixture(scope="module")
def tiny():
    backend = get_backend("tiny")
    backend.load()
    return backend


def _clip(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, 8, 40, 64, generator=g) * 2 - 1


def test_default_target_is_temporal_attention_qkv(tiny):
    chosen = select_parameters(tiny.unet, "qkv")
    # Independently: every Linear named to_q/to_k/to_v inside a temp_attentions block.
    expected = {
        f"{name}.{pname}"
        for name, mod in tiny.unet.named_modules()
        if isinstance(mod, torch.nn.Linear) and name.split(".")[-1] in ("to_q", "to_k", "to_v")
        and "temp_attentions" in name.split(".")
        for pname, _ in mod.named_parameters()
    }
    assert set(chosen) == expected and len(expected) == 24
    assert not any("transformer_in" in n or ".attentions." in n for n in chosen)


def test_other_targets(tiny):
    qkv = set(select_parameters(tiny.unet, "qkv"))
    temporal = set(select_parameters(tiny.unet, "temporal"))
    attention = set(select_parameters(tiny.unet, "attention"))
    assert qkv < temporal and all("temp_attentions" in n for n in temporal)
    assert any(".to_out." in n or "norm" in n for n in temporal - qkv)
    assert qkv < attention and any(".attentions." in n and "attn2" in n for n in attention)  # cross-attention too
    custom = select_parameters(tiny.unet, r"mid_block\.temp_attentions.*to_v")
    assert custom and all(re.search(r"mid_block\.temp_attentions.*to_v", n) for n in custom)
    with pytest.raises(VmcError, match="matches no parameter"):
        select_parameters(tiny.unet, "no_such_layer")
    with pytest.raises(VmcError, match="regular expression"):
        select_parameters(tiny.unet, "(")


@pytest.mark.parametrize("loss", ["cos", "l2", "official", "x0cos", "noise"])
def test_only_targets_change(tiny, loss):
    """Weight decay 0: AdamW's decay moves every parameter it is given, even with a zero
    gradient, so only the loss's gradient can make a target change here."""
    before = {n: p.detach().clone() for n, p in tiny.unet.named_parameters()}
    text = tiny.encode_prompts(["a ball is moving"])
    result = tune(tiny, _clip(), text, TuneConfig(steps=2, lr=1e-3, loss=loss, seed=1, weight_decay=0.0))
    after = dict(tiny.unet.named_parameters())
    targets = set(result["weights"])
    assert targets == set(select_parameters(tiny.unet, "qkv"))
    for name, old in before.items():
        if name in targets:
            assert not torch.equal(after[name], old), f"{name} did not change"
            assert torch.equal(result["weights"][name], after[name].detach())
        else:
            assert torch.equal(after[name], old), f"frozen {name} changed"
    assert len(result["losses"]) == 2 and all(v == v for v in result["losses"])
    assert all(not p.requires_grad for p in tiny.unet.parameters())
    with torch.no_grad():  # restore for the next test
        for name, old in before.items():
            after[name].copy_(old)


def test_same_seed_same_result(tiny):
    before = {n: p.detach().clone() for n, p in tiny.unet.named_parameters()}
    text = tiny.encode_prompts(["a ball is moving"])
    runs = []
    for _ in range(2):
        tiny.unet.eval()
        runs.append(tune(tiny, _clip(), text, TuneConfig(steps=2, lr=1e-3, seed=5)))
        with torch.no_grad():
            for name, p in tiny.unet.named_parameters():
                p.copy_(before[name])
    assert runs[0]["losses"] == runs[1]["losses"]
    assert all(torch.equal(runs[0]["weights"][k], runs[1]["weights"][k]) for k in runs[0]["weights"])
    # the returned weights are a snapshot: restoring the model after each run left them tuned
    # (were they views of the live parameters, both runs would now hold the base weights)
    assert all(not torch.equal(w, before[k]) for k, w in runs[0]["weights"].items())


def test_bad_config_values():
    with pytest.raises(VmcError):
        TuneConfig(loss="huber")
    with pytest.raises(VmcError):
        TuneConfig(steps=0)
    with pytest.raises(VmcError):
        TuneConfig(lr=-1)


def test_float16_targets_with_loss_scaling_are_refused(tiny, monkeypatch):
    """On CUDA in float16 the loss scaler cannot unscale float16 gradients: a clear error, not a crash."""
    import vmc_cli.method.tuning as tuning

    class FakeScaler:
        def __init__(self, *a, enabled=True, **k):
            self.enabled = enabled

        def is_enabled(self):
            return True

    monkeypatch.setattr(tuning.torch.amp, "GradScaler", FakeScaler)
    before = {n: p.detach().clone() for n, p in tiny.unet.named_parameters()}
    monkeypatch.setattr(tiny, "dtype", torch.float16)
    target = "mid_block.temp_attentions.0.transformer_blocks.0.attn1.to_q"
    param = dict(tiny.unet.named_parameters())[f"{target}.weight"]
    param.data = param.data.half()
    try:
        with pytest.raises(VmcError, match="float16"):
            tune(tiny, _clip(), tiny.encode_prompts(["a"]), TuneConfig(steps=1, target=target))
    finally:
        param.data = before[f"{target}.weight"].clone()
    # nothing was trained: every other parameter is untouched
    assert all(torch.equal(p, before[n]) for n, p in tiny.unet.named_parameters())


def test_master_weights_are_float32_for_what_tuning_trains():
    """One mechanism for fp32 master weights on a half-precision model: the temporal q/k/v (the
    latent backends) or the temporal blocks whole (Show-1); nothing else, and nothing in float32."""
    def model():
        attn = lambda: torch.nn.ModuleDict({k: torch.nn.Linear(4, 4) for k in ("to_q", "to_k", "to_v", "to_out")})  # noqa: E731
        block = torch.nn.ModuleDict({"temp_attentions": torch.nn.ModuleList([attn()]), "attentions": torch.nn.ModuleList([attn()])})
        return torch.nn.ModuleDict({"down": block, "norm": torch.nn.LayerNorm(4)}).to(torch.float16)

    from vmc_cli.method.tuning import keep_master_weights

    unet = model()
    keep_master_weights(unet, torch.float16, "temp_attentions")
    fp32 = {n for n, p in unet.named_parameters() if p.dtype == torch.float32}
    assert fp32 == {f"down.temp_attentions.0.{k}.{w}" for k in ("to_q", "to_k", "to_v") for w in ("weight", "bias")}
    assert fp32 == set(select_parameters(unet, "qkv", "temp_attentions"))  # exactly the default targets
    unet = model()
    keep_master_weights(unet, torch.bfloat16, "temp_attentions", layers=None)
    fp32 = {n for n, p in unet.named_parameters() if p.dtype == torch.float32}
    assert fp32 == {n for n, _ in unet.named_parameters() if n.startswith("down.temp_attentions.")} and len(fp32) == 8
    unet = model().float()
    assert keep_master_weights(unet, torch.float32, "temp_attentions", layers=None) == []
