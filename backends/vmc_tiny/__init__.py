"""The built-in ``tiny`` backend: a small random-weight cascade that runs on a CPU in seconds.

Registered through the ``vmc`` entry-point group like any third-party plugin.
This module stays free of heavy imports; the models live in the shared base package
(:mod:`vmc_pixel.tiny`, whose cascade the ``shapes`` backend borrows).
"""

from vmc_cli import hookimpl

#: its generation defaults where they depart from the method's: none (it runs the method's 75 steps)
DEFAULTS: dict = {}


def tiny_backend():
    from vmc_pixel.tiny import TinyBackend

    return TinyBackend()


@hookimpl
def register_backends(register):
    register(
        "tiny",
        tiny_backend,
        description="Tiny random-weight pixel cascade (8 key-frames at 64x40 -> 29 frames at 96x60); "
        "no download, CPU, for demos and tests",
        defaults=DEFAULTS,
    )
