"""The profile store: one folder per learned motion, described by a TOML manifest.

:mod:`.profiles` (the folder layout, atomic writes, locks, checksums, listing and removal),
:mod:`.manifests` (what a tune records: model, options, source clip and frames, prompts,
settings, loss) and :mod:`.checkpoints` (an unfinished tune's state, for ``--resume``).
"""
