"""The "shapes" world: seeded synthetic clips of one coloured shape moving on black.

Everything lives in :mod:`vmc_shapes.world`.  This package registers no plugin
and no entry point; it is a data generator for experiments and tests.
"""
