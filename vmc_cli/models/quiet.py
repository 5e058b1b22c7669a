"""Quieter third-party libraries while models load: generic helpers any backend may use.

vmc reports progress itself, so diffusers' and transformers' warnings and tqdm bars are
switched off around loading and pipeline construction, and restored afterwards. The
libraries are imported only when a context is entered.
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def quiet_libraries():
    """Silence diffusers' and transformers' warnings for a moment (around imports and pipeline
    construction: 'this pipeline is deprecated', 'falling back to CLIPImageProcessorPil')."""
    from diffusers.utils import logging as dlogging
    from transformers.utils import logging as tlogging

    levels = dlogging.get_verbosity(), tlogging.get_verbosity()
    dlogging.set_verbosity_error()
    tlogging.set_verbosity_error()
    try:
        yield
    finally:
        dlogging.set_verbosity(levels[0])
        tlogging.set_verbosity(levels[1])


@contextlib.contextmanager
def no_progress_bars():
    """No tqdm bars from diffusers/transformers while loading (vmc reports progress itself)."""
    from diffusers.utils import logging as dlogging
    from transformers.utils import logging as tlogging

    enabled = dlogging.is_progress_bar_enabled(), tlogging.is_progress_bar_enabled()
    dlogging.disable_progress_bar()
    tlogging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled[0]:
            dlogging.enable_progress_bar()
        if enabled[1]:
            tlogging.enable_progress_bar()
