"""The Wan miniature as a tiny factory for the contract suite (``tests/test_backend_contract.py``
takes it beside the other built-in backends' factories)."""

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
        # flow-matching Euler on Wan's shift-3 grid is first order with large steps near sigma = 1:
        # with the exact velocity 0.26 / 0.13 / 0.067 at 10 / 20 / 40 steps (halving, as it must)
        "exact_tolerance": 0.1,
        "why": "random weights (the model's round trip at 16 steps: 0.21 of the clip's norm against 5.6 from "
               "fresh noise); the exact-velocity round trip on the shift-3 Euler grid is 0.067 at 40 steps",
    },
}
