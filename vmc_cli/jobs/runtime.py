"""Where and how models run, shared by every job: the device, the dtype, the model folder, the
backend's own options (:class:`Runtime`), and a profile's tuned weights loaded onto its backend
(:func:`load_profile`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from vmc_cli.backend import check_device
from vmc_cli.checks import check_dtype, or_default
from vmc_cli.errors import VmcError
from vmc_cli.store.profiles import WEIGHTS, ProfileStore, check_backend
from vmc_cli.method.pipeline import MotionPipeline
from vmc_cli.progress import SILENT, Reporter


def default_backend() -> str:
    """``$VMC_BACKEND``, else Show-1 (the model the method was built on)."""
    import os

    return os.environ.get("VMC_BACKEND") or "show1"


def resolve_device(device: str = "auto") -> str:
    import torch

    check_device(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise VmcError(f"--device {device} asked for, but CUDA is not available here", "use --device cpu")
    return device


@dataclass
class Runtime:
    """Where and how models run, shared by every job."""

    device: str = "auto"
    dtype: str | None = None
    model_path: str | None = None
    progress: Reporter = SILENT
    #: the backend's own options as given (``--option NAME=VALUE``): name -> value, checked against
    #: the backend's declaration once it is known (``vmc_cli.backend_options``)
    options: dict = field(default_factory=dict)
    #: the command running (``tune``, ``invert``, ``generate``): options are declared per command
    command: str | None = None
    #: options a profile kept (declared ``kept``): used where not given (:func:`load_profile`)
    kept: dict = field(default_factory=dict)

    def __post_init__(self):
        check_device(self.device)
        check_dtype(self.dtype)

    def backend(self, name: str, stages: tuple[str, ...]):
        from vmc_cli.models.plugins import get_backend

        return self.load(get_backend(name), stages)

    def backend_options(self, backend) -> dict:
        """The values of ``backend``'s declared options: given (checked and converted), else kept by
        the profile, else set by their environment variables, else declared defaults. One it does
        not declare is an error (before any model loads). ``model_path`` is ``--model-path``'s."""
        from vmc_cli.backend_options import resolve
        from vmc_cli.models.plugins import option_takers

        usable = {o.name for o in backend.options if self.command is None or self.command in o.commands}
        given = {**{k: v for k, v in self.kept.items() if k in usable}, **self.options}
        values = resolve(backend.name, backend.options, given, self.command,
                         option_takers() if self.options else None)
        if self.model_path is not None:
            values["model_path"] = self.model_path
        return values

    def _arguments(self, backend) -> dict:
        values = self.backend_options(backend)
        return {"model_path": values.pop("model_path", None), "progress": self.progress, **values}

    def configure(self, backend) -> None:
        backend.configure(**self._arguments(backend))

    def load(self, backend, stages: tuple[str, ...], check=None):
        extra = self._arguments(backend)
        if check is not None:
            extra["check"] = check
        backend.load(device=resolve_device(self.device), dtype=self.dtype, stages=stages, **extra)
        return backend

    def recorded_options(self, backend) -> dict:
        """What a profile's manifest records of the options (``[backend.options]``): every value
        that shaped this run, but the model's place (recorded as ``model_path``)."""
        values = self.backend_options(backend)
        values.pop("model_path", None)
        return values


def motion_scale_for(backend, scale: float | None) -> float:
    """``--motion-scale`` as given, else the backend's default (1: the profile as tuned)."""
    return or_default(scale, backend.defaults.get("motion_scale", 1.0))


def recordable_model_path(model_path: str | None) -> str | None:
    """``--model-path`` as the manifest keeps it: a folder as its absolute path (so a later
    command from another folder finds it), anything else (a hub id) as given."""
    if model_path is None:
        return None
    folder = Path(model_path).expanduser()
    return str(folder.resolve()) if folder.is_dir() else str(model_path)


def recorded_model_path(manifest: dict) -> str | None:
    """The ``--model-path`` a profile was tuned with: recorded as such, or (profiles made before
    it was) the local folder its model was loaded from."""
    backend = manifest.get("backend", {})
    if backend.get("model_path"):
        return str(backend["model_path"])
    models = backend.get("models", {})
    info = models.get("base") if "base" in models else models.get("keyframes")  # base: --adapter is not it
    if isinstance(info, dict) and info.get("source") == "local" and Path(str(info.get("id", ""))).is_absolute():
        return str(info["id"]).split("#")[0]
    return None


def with_recorded_model(runtime: Runtime, manifest: dict, name: str) -> tuple[Runtime, str | None]:
    """``runtime`` with the model a profile was tuned with when no ``--model-path`` is given
    (it overrides); the folder's files are then checked against the recorded hashes like any
    model's. Returns (runtime, the recorded path used or None)."""
    import dataclasses

    recorded = recorded_model_path(manifest)
    if runtime.model_path is not None or recorded is None:
        return runtime, None
    if Path(recorded).is_absolute() and not Path(recorded).is_dir():
        raise VmcError(f"profile {name!r} was tuned with the model in {recorded}, which is not there any more",
                       "pass --model-path with a folder holding the same model files, or tune again")
    runtime.progress.log(f"model: {recorded} (the one profile {name!r} was tuned with)")
    return dataclasses.replace(runtime, model_path=recorded), recorded


def load_profile(name: str, *, store: ProfileStore, runtime: Runtime, backend_name: str | None,
                 stages: tuple[str, ...], motion_scale: float | None = 1.0):
    """Backend with the profile's tuned weights applied (at ``motion_scale``: W0 + S (W - W0);
    None: the backend's default), plus the manifest."""
    from vmc_cli.models.plugins import get_backend

    manifest = store.manifest(name)
    made_by = manifest.get("backend", {}).get("name")
    if backend_name:
        get_backend(backend_name)  # an unknown backend is reported as such
    check_backend(manifest, name, backend_name or made_by)
    runtime, recorded = with_recorded_model(runtime, manifest, name)

    def same_models(info: dict) -> None:
        try:
            check_backend(manifest, name, made_by, info)
        except VmcError as exc:
            if recorded is None:
                raise
            raise VmcError(f"the model files in {recorded} have changed since profile {name!r} was tuned with them "
                           f"({exc.message})",
                           "pass --model-path with a folder holding the files it was tuned with, or tune again") from None

    backend = get_backend(made_by)
    kept = {o.name for o in backend.options if o.kept}
    recorded_options = manifest.get("backend", {}).get("options", {})
    runtime = dataclasses.replace(runtime, kept={k: v for k, v in recorded_options.items() if k in kept})
    runtime.backend_options(backend)  # an option the backend has no use for, before loading
    backend = runtime.load(backend, stages, check=same_models)  # refused before weights load
    same_models(backend.model_info())
    recorded = manifest.get("backend", {}).get("models", {})
    for role, now_info in backend.model_info().items():  # e.g. another SD1.5 base under the same adapter
        then = recorded.get(role, {})
        if role != "keyframes" and then.get("id") and (then.get("id"), then.get("revision")) != (
                now_info.get("id"), now_info.get("revision")):
            runtime.progress.log(f"note: profile {name!r} was tuned with {role} {then.get('id')}@"
                                 f"{str(then.get('revision'))[:12]}; this run uses {now_info.get('id')}@"
                                 f"{str(now_info.get('revision'))[:12]}")
    backend.use_adapter_layout(manifest.get("adapter"), name)  # a LoRA profile's adapters, before its weights
    weights = store.load(name, WEIGHTS, manifest)
    MotionPipeline(backend).apply_profile(weights, motion_scale_for(backend, motion_scale))
    return backend, manifest
