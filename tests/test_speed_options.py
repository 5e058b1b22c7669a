"""Speed options keep results: each one on vs off on tiny models, CPU, offline.

The options (``vmc_show1`` and ``benchmarks/show1_gpu.py``), and where each is checked:

==================================  ==============================================================
``VMC_SHOW1_GRADIENT_CHECKPOINTING``  here: same losses and tuned weights (tuning through the
                                      backend's loader); the UNet's gradients:
                                      ``test_show1_unet.py::test_gradient_checkpointing_takes_effect``
SDPA attention (the UNet's default)   here: same UNet output as the classic processors, all stages
``--dtype float16/bfloat16``          here: predictions and tuning losses close to float32
``VMC_SHOW1_OFFLOAD``                 here, CUDA only (skipped on CPU: offloading only acts on CUDA
                                      devices): the same cascade frames with and without
``--compile`` (benchmark only)        here: the same tuning losses and weights through
                                      ``torch.compile`` (``aot_eager``: graph capture and autograd;
                                      inductor's generated kernels need a C++ toolchain and minutes)
==================================  ==============================================================

The key-frame model is the reference tiny Show-1 base UNet (``shared/reference/show1/tiny_base.*``,
the original implementation's weights and output), loaded through ``Show1Backend.load`` from a
local folder in the hub layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "show1"
if not REF.is_dir():
    pytest.skip(f"Show-1 reference data not found at {REF}", allow_module_level=True)

from safetensors.torch import load_file  # noqa: E402

from vmc_cli.method.tuning import TuneConfig, tune  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # diffusers + numpy 2

STAGES = ["base", "interp", "sr1", "sr2"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("VMC_SHOW1_PATH", "VMC_SHOW1_REVISIONS", "VMC_SHOW1_INVERSION", "VMC_SHOW1_OFFLOAD",
                "VMC_SHOW1_GRADIENT_CHECKPOINTING", "VMC_SHOW1_STEPS", "VMC_SHOW1_KEYFRAME_SIZE"):
        monkeypatch.delenv(var, raising=False)


def _tiny_unet(stage: str):
    """A tiny Show-1 UNet with the reference weights, in eval mode, and its reference inputs/output."""
    from vmc_show1 import Show1UNet3DConditionModel

    cfg = json.loads((REF / f"tiny_{stage}.config.json").read_text())["unet_config"]
    tensors = load_file(str(REF / f"tiny_{stage}.safetensors"))
    model = Show1UNet3DConditionModel.from_config(cfg)
    model.load_state_dict({k[len("weights."):]: v.float() for k, v in tensors.items() if k.startswith("weights.")},
                          strict=True)
    return model.eval(), {k[len("input."):]: v for k, v in tensors.items() if k.startswith("input.")}, tensors


@pytest.fixture(scope="module")
def base_root(tmp_path_factory) -> Path:
    """``<root>/show-1-base`` in the hub layout: the reference tiny base UNet (saved under Show-1's
    class name, as the real repository), the published base scheduler, a tiny T5 tokenizer and encoder."""
    from test_show1_backend import _t5_tokenizer
    from transformers import T5Config, T5EncoderModel

    root = tmp_path_factory.mktemp("speed-models")
    base = root / "show-1-base"
    model, _, _ = _tiny_unet("base")
    model.save_pretrained(base / "unet")
    cfg_path = base / "unet" / "config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "_class_name": "UNet3DConditionModel"}))
    files = json.loads((REF / "pipeline_files.json").read_text())["show-1-base"]
    (base / "scheduler").mkdir()
    (base / "scheduler" / "scheduler_config.json").write_text(
        json.dumps(files["scheduler/scheduler_config.json"]["content"]))
    (base / "model_index.json").write_text(json.dumps(files["model_index.json"]["content"]))
    tokenizer = _t5_tokenizer()
    tokenizer.save_pretrained(base / "tokenizer")
    torch.manual_seed(2)
    T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=model.config.encoder_hid_dim, d_kv=8, d_ff=64,
                            num_layers=1, num_heads=2, pad_token_id=0, eos_token_id=1)
                   ).save_pretrained(base / "text_encoder")
    return root


def _backend(root: Path, dtype: str = "float32", **kwargs):
    from vmc_show1.backend import Show1Backend

    backend = Show1Backend(**kwargs)
    backend.name = "show1"
    backend.load(device="cpu", dtype=dtype, model_path=root)
    return backend


def _clip_and_text(width: int = 48):
    g = torch.Generator().manual_seed(0)
    clip = torch.rand(1, 3, 8, 10, 16, generator=g) * 2 - 1
    text = torch.randn(1, 77, width, generator=g)
    return clip, text


def _tune(backend, steps=3):
    clip, text = _clip_and_text(backend.unet.config.encoder_hid_dim)
    before = {n: p.detach().clone() for n, p in backend.unet.named_parameters()}
    # Weight decay 0: with AdamW's decay every target moves even on a zero gradient, and the
    # "changed" guard below would pass whatever the loss did.
    result = tune(backend, clip.to(backend.dtype), text.to(backend.dtype),
                  TuneConfig(steps=steps, lr=1e-3, seed=3, weight_decay=0.0))
    changed = [n for n, w in result["weights"].items() if not torch.equal(w, before[n].float())]
    assert changed, "tuning changed nothing: the comparison would be vacuous"
    return result


# ------------------------------------------------------------------------------------------
# gradient checkpointing
# ------------------------------------------------------------------------------------------
def test_gradient_checkpointing_keeps_tuning_results(base_root, monkeypatch):
    """VMC_SHOW1_GRADIENT_CHECKPOINTING=1 recomputes activations in backward (dropout is active
    while tuning, so the recomputation must replay the same random masks): same losses, same
    tuned weights."""
    calls = []
    original = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda *a, **k: calls.append(1) or original(*a, **k))

    plain = _backend(base_root)
    assert not plain.unet.is_gradient_checkpointing
    off = _tune(plain)
    assert calls == []

    monkeypatch.setenv("VMC_SHOW1_GRADIENT_CHECKPOINTING", "1")
    checkpointed = _backend(base_root)
    assert checkpointed.unet.is_gradient_checkpointing
    on = _tune(checkpointed)
    assert len(calls) > 0, "the option did not route anything through activation checkpointing"

    assert on["losses"] == pytest.approx(off["losses"], rel=1e-5, abs=1e-7)
    assert on["weights"].keys() == off["weights"].keys()
    for name, w in off["weights"].items():
        torch.testing.assert_close(on["weights"][name], w, rtol=1e-5, atol=1e-6, msg=name)


# ------------------------------------------------------------------------------------------
# attention processors: SDPA (default) vs the classic ones
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", STAGES)
def test_sdpa_attention_matches_classic_attention(stage):
    from diffusers.models.attention_processor import (
        AttnAddedKVProcessor,
        AttnAddedKVProcessor2_0,
        AttnProcessor,
        AttnProcessor2_0,
    )

    classic = {AttnProcessor2_0: AttnProcessor, AttnAddedKVProcessor2_0: AttnAddedKVProcessor}
    model, inputs, ref = _tiny_unet(stage)
    processors = model.attn_processors
    assert processors and all(type(p) in classic for p in processors.values()), \
        {type(p).__name__ for p in processors.values()}  # SDPA everywhere by default

    def run():
        with torch.no_grad():
            return model(inputs["sample"], inputs["timestep"], inputs["encoder_hidden_states"],
                         class_labels=inputs.get("class_labels"), return_dict=False)[0]

    sdpa = run()
    model.set_attn_processor({name: classic[type(p)]() for name, p in processors.items()})
    assert not any(isinstance(p, (AttnProcessor2_0, AttnAddedKVProcessor2_0)) for p in model.attn_processors.values())
    plain = run()
    assert (sdpa - plain).abs().max().item() <= 1e-4
    assert (plain - ref["output.sample"]).abs().max().item() <= 1e-4  # both are the original's output


# ------------------------------------------------------------------------------------------
# half precision
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_stays_close_to_float32(base_root, dtype):
    """--dtype bfloat16/float16 (fp32 master weights for what tuning trains, autocast): the
    noise predictions and the tuning losses stay close to float32's."""
    full, half = _backend(base_root), _backend(base_root, dtype)
    assert half.dtype == getattr(torch, dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 8, 10, 16, generator=g)
    t = torch.tensor([20, 700])
    text = torch.randn(2, 77, 48, generator=g)
    ref = full.predict_noise(x, t, text)
    out = half.predict_noise(x.to(half.dtype), t, text.to(half.dtype)).float()
    rel = ((out - ref).norm() / ref.norm()).item()
    # measured on CPU: 2.5e-2 (bfloat16, 8-bit mantissa) and 2.8e-3 (float16); a wrong cast or
    # channel split gives errors of order 1
    assert rel < (6e-2 if dtype == "bfloat16" else 1e-2), rel
    losses_full = _tune(full)["losses"]
    losses_half = _tune(half)["losses"]
    # measured: at most 1.7e-3 (bfloat16) and 1.6e-4 (float16) relative
    assert losses_half == pytest.approx(losses_full, rel=2e-2 if dtype == "bfloat16" else 2e-3)


# ------------------------------------------------------------------------------------------
# offloading
# ------------------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="VMC_SHOW1_OFFLOAD only acts on CUDA devices (Show1Backend._offloading is False "
                           "elsewhere), so on a CPU there is nothing to compare")
def test_offload_keeps_cascade_results(tmp_path, monkeypatch):
    from test_show1_backend import SIZE_ENV, build_tiny_show1

    from vmc_show1.backend import Show1Backend

    for var, value in SIZE_ENV.items():
        monkeypatch.setenv(var, value)
    root = build_tiny_show1(tmp_path / "models")
    keyframes = torch.rand(1, 3, 8, 10, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    frames = {}
    for offload in (False, True):
        backend = Show1Backend(offload=offload, gradient_checkpointing=False)
        backend.name = "show1"
        backend.load(device="cuda", dtype="float32", model_path=root, stages=("all",))
        assert backend._offloading is offload
        frames[offload] = backend.run_cascade(keyframes.cuda(), "a cat")
        if offload:
            assert all(p.device.type == "cpu" for m in backend._stage_models.values()
                       for module in m.values() if isinstance(module, torch.nn.Module) for p in module.parameters())
            assert backend.unet.device.type == "cuda"  # the key-frame model comes back
    diff = (frames[True].astype(int) - frames[False].astype(int))
    assert abs(diff).max() <= 1


# ------------------------------------------------------------------------------------------
# torch.compile (benchmarks/show1_gpu.py --compile)
# ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_compiled_unet_keeps_tuning_results(base_root):
    """The benchmark's ``--compile`` wraps the key-frame UNet in ``torch.compile`` before tuning:
    through dynamo's graph capture and AOT autograd (``aot_eager``) the losses and tuned weights
    are those of the eager model."""
    torch._dynamo.reset()
    eager = _tune(_backend(base_root), steps=2)
    compiled_backend = _backend(base_root)
    compiled_backend._unet = torch.compile(compiled_backend._unet, backend="aot_eager")
    compiled = _tune(compiled_backend, steps=2)
    torch._dynamo.reset()
    assert compiled["losses"] == pytest.approx(eager["losses"], rel=1e-5, abs=1e-7)
    weights = {name.removeprefix("_orig_mod."): w for name, w in compiled["weights"].items()}  # the wrapper's names
    assert weights.keys() == eager["weights"].keys()
    for name, w in eager["weights"].items():
        torch.testing.assert_close(weights[name], w, rtol=1e-5, atol=1e-6, msg=name)
