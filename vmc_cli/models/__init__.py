"""Finding backends and their model files.

:mod:`.plugins` (the pluggy manager: backends registered under the ``vmc`` entry-point group),
:mod:`.repos` and :mod:`.hub` (model files from the Hugging Face hub by id and pinned revision,
or from local folders; one clear error naming what is missing offline), :mod:`.quiet` (quieter
libraries while weights load) and :mod:`.lora_files` (LoRA files in the layouts other tools
load: diffusers, ComfyUI, kohya, AnimateDiff motion LoRAs).
"""
