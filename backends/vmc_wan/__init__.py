"""Wan 2.1 backend for vmc (issue #21): the ``wan`` plugin.

Cheap to import; the models load in ``vmc_wan.backend``. Registered in pyproject's ``vmc`` entry
points like the other built-in backends; tested through the CLI and the contract suite on the
miniature (:mod:`vmc_wan.tiny`, :mod:`vmc_wan.contract`). Profiles are LoRA adapters on the
self-attention (their layout in the manifest), the motion scale is the LoRA scale, and
``vmc export`` writes them as a LoRA file ``WanPipeline.load_lora_weights`` takes.

Memory notes for the real 1.3B model (counted, not yet measured on a GPU): the transformer is
1.42e9 parameters (2.8 GB in bfloat16; its self-attention q and k, the LoRA targets, 0.14e9),
UMT5-XXL's encoder about 5.7e9 (11 GB in bfloat16; released once the prompts are encoded, or kept
in CPU memory with ``VMC_WAN_OFFLOAD=1``), the VAE 0.13e9. Tuning backpropagates through every
block; the tensors one block of the 1.3B config saves for the backward pass come to 70-76 kB
per token in bfloat16 (counted on a CPU with ``torch.autograd.graph.saved_tensors_hooks`` at
two token counts, 76 kB the difference per token, which may hold up to 7 kB of the CPU kernel's
attention scores that SDPA's flash kernels do not keep). A 33-frame
832x480 clip is 14,040 tokens: 30 blocks keep about 32 GB, which one 80 GB GPU holds; with
gradient checkpointing (``VMC_WAN_GRADIENT_CHECKPOINTING=1``) only each block's input is kept (3,072 bytes per
token and block, counted the same way: 1.3 GB) plus one block's recomputation (1.1 GB), which
fits 24 GB.
81 frames (32,760 tokens) would keep about 75 GB without checkpointing.
"""

from vmc_cli import hookimpl
from vmc_cli.backend_options import BackendOption
from vmc_latent import revision_option, speed_options

#: the rank tuning's adapters get (``--option lora_rank=8``)
LORA_RANK = BackendOption("lora_rank", int, default=16, commands=("tune",), range=(1, None),
                          help="rank of the LoRA adapters tuned on the self-attention (alpha = rank; a profile keeps "
                               "its own, so generate and invert need none)")
#: its generation defaults where they depart from the method's: Wan's own 50 steps and guidance 5
DEFAULTS = {"invert_steps": 50, "sample_steps": 50, "guidance": 5.0}
#: its settings (``--option NAME=VALUE`` or the environment variable), passed to ``configure()``
OPTIONS = (
    BackendOption("model_path", env="VMC_WAN_MODEL",
                  help="a hub id (default Wan-AI/Wan2.1-T2V-1.3B-Diffusers) or a folder WanPipeline.save_pretrained "
                       "wrote"),
    revision_option("revision", "VMC_WAN_REVISION"),
    BackendOption("keyframes", env="VMC_WAN_KEYFRAMES", kept=True,
                  help="FRAMESxWIDTHxHEIGHT of the key-frames (default 33x832x480; frames 4k+1, sides multiples of "
                       "16)"),
    LORA_RANK,
    *speed_options("WAN"),
)
#: tuning trains LoRA adapters on the self-attention's q and k in every block (``--target`` on
#: wan: PROJECTIONS[:BLOCKS], e.g. qkv or qk:0-14; vmc_wan.backend.parse_target) with the cosine on
#: denoised motion vectors (``x0cos``): on shapes-wan, Wan's architecture and flow schedule at a small
#: size, the paper's noise-residual cosine taught a LoRA no path at all (1.02x untuned from fresh
#: noise) and x0cos did (0.36x; docs/shapes_wan.md). That is a fact of the loss on a flow model, so
#: it carries over; shapes-wan's steps, rate and rank were chosen on a 1.75M-parameter model and do
#: not, so 400 x 1e-4 at rank 16 stay until measured on the 1.3B model. ``--loss cos`` is the paper's.
TUNE_DEFAULTS = {"target": "qk", "loss": "x0cos"}


def wan_backend():
    from .backend import WanBackend

    return WanBackend()


@hookimpl
def register_backends(register):
    register(
        "wan",
        wan_backend,
        description="Wan 2.1 text-to-video (diffusers WanTransformer3DModel, a flow-matching transformer over "
        "AutoencoderKLWan latents): Wan-AI/Wan2.1-T2V-1.3B-Diffusers at a pinned hub commit (VMC_WAN_REVISION "
        "overrides) or --model-path FOLDER, 33 frames (4k+1) at 832x480; LoRA on the self-attention's q/k tuned; needs "
        "the hub weights and a CUDA GPU",
        tune_defaults=TUNE_DEFAULTS,
        options=OPTIONS,
        defaults=DEFAULTS,
    )
