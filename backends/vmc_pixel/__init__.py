"""Shared base of the pixel-space backends (``show1``, ``tiny``, ``shapes``): not a plugin.

This package registers no backend. It is the one package that registered backends may
import besides ``vmc_cli`` (tests/test_imports.py checks that no registered backend imports
another registered backend). It holds the model code that more than one of them uses:

- :mod:`vmc_pixel.unet`, :mod:`vmc_pixel.blocks`: Show-1's video UNet as a diffusers model
  (``Show1UNet3DConditionModel``), used by ``show1`` at full size and by ``shapes`` at a
  tiny one;
- :mod:`vmc_pixel.tiny`: the tiny random-weight cascade (``TinyBackend``), the hashing word
  tokenizer and the small-text-model prompt cache, used by ``tiny`` as its whole model and
  by ``shapes`` for its text tokenizer and later stages.

Keep this module itself free of heavy imports (torch, diffusers).
"""
