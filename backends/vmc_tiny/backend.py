"""The ``tiny`` backend's models: the tiny cascade of :mod:`vmc_pixel.tiny` (shared with the
``shapes`` backend, which borrows its later stages), re-exported under this name."""

from vmc_pixel.tiny import (  # noqa: F401
    STAGES,
    HashTokenizer,
    SmallTextModel,
    TinyBackend,
    motion_inbetweens,
    phase_shift,
)
