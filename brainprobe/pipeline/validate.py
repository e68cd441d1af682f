"""Checks of a run config against the zoo and the file system, done before anything is written.

Each problem raises :class:`brainprobe.errors.ConfigError` with one line naming the config file,
the key and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

from brainprobe.errors import ConfigError, ModelError, WeightsError
from brainprobe.pipeline.config import AlgonautsDataset, GenericDataset, NsdDataset, RunConfig, SimulatedDataset


def validate_config(config: RunConfig, source: str = "config") -> None:
    """Raise ConfigError on the first unknown model or layer, missing data path or unwritable folder."""
    from brainprobe.zoo import get_spec

    from brainprobe.zoo.weights import resolve_weights

    def spec_of(name: str, key: str, weights: Path | None = None):  # type: ignore[no-untyped-def]
        try:
            spec = get_spec(name)
            resolve_weights(spec, weights)
        except (ModelError, WeightsError) as err:
            raise ConfigError(f"{source}: key '{key}': {err}") from None
        return spec

    ds = config.dataset
    if isinstance(ds, SimulatedDataset):
        labels = config.dataset_labels()
        if len(set(labels)) != len(labels):
            raise ConfigError(f"{source}: key 'dataset.brains': two brains share a label; give each a distinct 'label'")
        for i, brain in enumerate(ds.brains):
            spec_of(brain.backbone, f"dataset.brains.{i}.backbone")
    elif isinstance(ds, (NsdDataset, AlgonautsDataset)):
        _exists(ds.root, f"{source}: key 'dataset.root'", folder=True)
    elif isinstance(ds, GenericDataset):
        _exists(ds.images, f"{source}: key 'dataset.images'", folder=None)
        _exists(ds.responses, f"{source}: key 'dataset.responses'", folder=False)
        if ds.rois is not None:
            _exists(ds.rois, f"{source}: key 'dataset.rois'", folder=False)

    for i, m in enumerate(config.models):
        if m.weights is not None:
            _exists(m.weights, f"{source}: key 'models.{i}.weights'", folder=False)
        spec = spec_of(m.name, f"models.{i}.name", m.weights)
        if m.layer is not None and m.layer not in spec.layers:
            raise ConfigError(
                f"{source}: key 'models.{i}.layer': unknown layer {m.layer!r} of {m.name}; "
                f"valid: {', '.join(spec.layers)}"
            )

    a = config.analyses
    if "semantics" in a.include and a.classifier:
        spec = spec_of(a.classifier, "analyses.classifier")
        if not getattr(spec, "has_classifier", True):
            raise ConfigError(f"{source}: key 'analyses.classifier': {a.classifier} has no ImageNet classifier head; "
                              "choose e.g. efficientnet_lite1 or mobilenet_v2")
    for nm in a.contrast_norms or []:
        if nm not in config.probes.eps:
            raise ConfigError(f"{source}: key 'analyses.contrast_norms': no eps grid for {nm}; add probes.eps.{nm}")

    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"{source}: key 'device': cuda requested but no CUDA device is visible; use cpu or auto")

    _writable(config.output.dir, f"{source}: key 'output.dir'")
    if config.output.cache_dir is not None:
        _writable(config.output.cache_dir, f"{source}: key 'output.cache_dir'")


def _exists(path: Path, where: str, *, folder: bool | None) -> None:
    if not path.exists():
        raise ConfigError(f"{where}: {path} does not exist; check the path (relative paths are from the current folder)")
    if folder is True and not path.is_dir():
        raise ConfigError(f"{where}: {path} is not a folder")
    if folder is False and not path.is_file():
        raise ConfigError(f"{where}: {path} is not a file")


def _writable(path: Path, where: str) -> None:
    """The folder exists and is writable, or can be created under its nearest existing parent."""
    path = Path(os.path.abspath(path))
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{where}: cannot create {path}: {probe} is a file, not a folder; choose another output folder")
    # os.access is True for root even on read-only mounts; ask the file system itself.
    try:
        fd = os.open(probe, os.O_RDONLY)
        os.close(fd)
        ok = os.access(probe, os.W_OK | os.X_OK) and _statvfs_writable(probe)
    except OSError:
        ok = False
    if not ok:
        raise ConfigError(f"{where}: {probe} is not writable; choose an output folder you can write to")


def _statvfs_writable(path: Path) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    if st.f_flag & os.ST_RDONLY:
        return False
    # pseudo file systems (/proc, /sys) report zero blocks and refuse new files
    return st.f_blocks > 0
