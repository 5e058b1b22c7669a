"""The ``shapes-wan`` backend: the ``wan`` backend on the shipped shapes-world model.

What differs from ``wan`` is only the model's facts: its folder (``weights/``, or ``--model-path``
/ ``VMC_SHAPES_WAN_PATH``), its key-frames (9 frames at 32x32, from :mod:`vmc_shapes_wan.model`,
not wan's ``keyframes`` option), its defaults (25 inversion and sampling steps), and a revision hashed
from the weights (a retrained model refuses profiles of the old one).
"""

from __future__ import annotations

from pathlib import Path

from vmc_cli.models.repos import weights_revision
from vmc_latent import local_folder
from vmc_wan.backend import WanBackend, spec

from vmc_cli.method.tune_config import GENERATE_DEFAULTS

from . import DEFAULTS, OPTIONS
from . import model as M


class ShapesWanBackend(WanBackend):
    #: its declared settings (the plugin registers the same ones)
    options = OPTIONS
    num_frames, width, height = M.FRAMES, M.SIZE, M.SIZE
    fps = 8.0
    #: its generation defaults (:data:`vmc_shapes_wan.DEFAULTS`, registered the same)
    defaults = {**GENERATE_DEFAULTS, **DEFAULTS}

    def locate(self, model_path, log) -> tuple[Path, dict]:
        """The shipped folder, ``--model-path`` or ``VMC_SHAPES_WAN_PATH``: a local folder only."""
        folder = Path(model_path or self.setting("model_path") or M.WEIGHTS).expanduser()
        info = local_folder(folder, spec(folder.name), "a shapes-wan model folder",
                            "train one with `python -m vmc_shapes_wan.train --out FOLDER`, or drop --model-path")
        shipped = folder.resolve() == M.WEIGHTS.resolve()
        return folder, {**info, "id": "vmc-shapes-wan/keyframes" if shipped else info["id"],
                        "revision": weights_revision(folder), "source": "shipped" if shipped else "local"}

    def keyframes_setting(self, given=None) -> tuple[int, int, int]:
        return M.FRAMES, M.SIZE, M.SIZE
