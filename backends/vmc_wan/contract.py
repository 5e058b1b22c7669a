"""The Wan miniature as a tiny factory for the contract suite (``tests/test_backend_contract.py``):
``VMC_CONTRACT_FACTORIES=vmc_wan.contract:TINY`` (docs/backends.md)."""

from __future__ import annotations

from pathlib import Path


def _prepare(folder: Path) -> Path:
    from .tiny import write_tiny_wan

    return write_tiny_wan(folder / "tiny-wan")


TINY = {
    "wan": {
        "prepare": _prepare,
        "load": lambda folder: {"model_path": str(folder)},
        "env": {"VMC_WAN_KEYFRAMES": "9x32x32"},
        "cascade_shape": (9, 32, 32),
        "round_trip_levels": None,  # a random VAE is no codec
        "invert_steps": 4,
        "baseline_ratio": 0.35,
        "why": "random weights; measured at 16 steps: 0.21 of the clip's norm against 5.6 from fresh noise",
    },
}
