"""Natural Scenes Dataset (Allen et al. 2022) loader, from files the user downloaded.

Layout read under ``root`` (the NSD release tree)::

    nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5                       imgBrick: 73000 x 425 x 425 x 3 uint8
    nsddata/experiments/nsd/nsd_expdesign.mat                          masterordering (1 x 30000),
                                                                       subjectim (8 x 10000), sharedix (1 x 1000)
    nsddata_betas/ppdata/subjXX/func1pt8mm/<betas>/betas_sessionNN.hdf5  betas: trials x Z x Y x X int16 (x300)
    nsddata/ppdata/subjXX/func1pt8mm/roi/<mask>.nii.gz                 X x Y x Z; > 0 inside

All indices in the design are 1-based. h5py reads the betas with the spatial axes reversed
relative to the NIfTI volumes (MATLAB wrote them column-major), so the mask is transposed to
(Z, Y, X) before indexing. Betas are divided by 300 (percent signal change), z-scored per voxel
within each session, and grouped by image (up to 3 repeats; NaN pads missing repeats).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from brainprobe._progress import progress
from brainprobe.data._io import hdf5_dataset, open_hdf5, read_hdf5, require_file, resize_images
from brainprobe.errors import DataError

TRIALS_PER_SESSION = 750
_CHUNK = 100  # trials / images read from HDF5 at a time


def _subject_tag(subject: int | str) -> tuple[int, str]:
    m = re.fullmatch(r"(?:subj)?0*([1-8])", str(subject))
    if not m:
        raise DataError(f"NSD subject must be 1-8 or 'subj01'..'subj08', got {subject!r}")
    k = int(m.group(1))
    return k, f"subj{k:02d}"


def _load_design(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    from scipy.io import loadmat

    require_file(path, "NSD experiment design (nsd_expdesign.mat)")
    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises several types for non-MAT files
        raise DataError(f"{path}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from None
    for key in ("masterordering", "subjectim"):
        if key not in mat:
            raise DataError(f"{path}: variable '{key}' missing from the NSD design file")
    order = np.asarray(mat["masterordering"]).reshape(-1).astype(np.int64)
    subjectim = np.asarray(mat["subjectim"]).astype(np.int64)
    if subjectim.ndim != 2:
        raise DataError(f"{path}: 'subjectim' must be subjects x images, got shape {subjectim.shape}")
    shared = np.asarray(mat["sharedix"]).reshape(-1).astype(np.int64) if "sharedix" in mat else None
    return order, subjectim, shared


def _check_range(values: np.ndarray, hi: int, path: Path, name: str) -> None:
    bad = (values < 1) | (values > hi)
    if bad.any():
        v = int(values[bad][0])
        raise DataError(
            f"{path}: '{name}' holds 1-based index {v} outside 1..{hi}; the design file does not match the data"
        )


def load_nsd(
    root: str | Path,
    subject: int | str,
    *,
    sessions: Sequence[int] | None = None,
    mask: str = "nsdgeneral",
    rois: dict[str, tuple[str, Sequence[int]]] | None = None,
    betas: str = "betas_fithrf_GLMdenoise_RR",
    space: str = "func1pt8mm",
    resolution: int | None = None,
    zscore: bool = True,
):
    """Load one NSD subject's single-trial betas and stimuli as a Dataset.

    Parameters
    ----------
    root : path
        The NSD release folder (containing ``nsddata``, ``nsddata_betas``, ``nsddata_stimuli``).
    subject : int or str
        1-8 or ``"subj01"``.
    sessions : sequence of int, optional
        1-based sessions to read. Default: every ``betas_sessionNN.hdf5`` that exists (most
        subjects have fewer public sessions than the design's 40).
    mask : str
        ROI file (without ``.nii.gz``) in ``nsddata/ppdata/subjXX/<space>/roi/``; voxels > 0 are kept.
    rois : dict, optional
        ROI name -> (ROI file stem, label values), e.g. ``{"V1": ("prf-visualrois", [1, 2])}``;
        each kept voxel gets the first ROI that contains it, else the mask's name.
    betas : str
        Beta version folder.
    space : str
        ``func1pt8mm`` or ``func1mm``.
    resolution : int, optional
        Resize stimuli to this side (px); default keeps 425 px.
    zscore : bool
        z-score each voxel within each session (NSD's recommendation), else keep % signal change.

    Returns
    -------
    Dataset
        Responses N x V (trial means), trials N x 3 x V (NaN where an image had fewer repeats),
        targets with voxel coordinates ``x, y, z`` (NIfTI ijk) and ROI, split ``test`` for the
        shared-1000 images (``sharedix`` of the design file, 1-based 73k ids; a design without
        it gets a seeded random 20 % test split), NCSNR noise ceilings, attrs ``source="nsd"``.
        Each NSD image is a distinct COCO photo, so every image is its own group.
    """
    import nibabel as nib

    from brainprobe.data.dataset import Dataset

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: NSD root folder not found")
    k, tag = _subject_tag(subject)
    design_path = root / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat"
    stim_path = root / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"
    beta_dir = root / "nsddata_betas" / "ppdata" / tag / space / betas
    roi_dir = root / "nsddata" / "ppdata" / tag / space / "roi"

    order, subjectim, shared = _load_design(design_path)
    if k > subjectim.shape[0]:
        raise DataError(f"{design_path}: 'subjectim' has {subjectim.shape[0]} subjects, no subject {k}")
    _check_range(order, subjectim.shape[1], design_path, "masterordering")

    # ROI mask (NIfTI X x Y x Z) -> h5py order (Z x Y x X)
    mask_path = require_file(roi_dir / f"{mask}.nii.gz", f"ROI mask '{mask}'")
    try:
        mask_vol = np.asarray(nib.load(mask_path).get_fdata())
    except Exception as exc:
        raise DataError(f"{mask_path}: unreadable NIfTI ({type(exc).__name__}: {exc})") from None
    keep = mask_vol > 0
    if not keep.any():
        raise DataError(f"{mask_path}: mask selects no voxel (no value > 0)")
    ijk = np.argwhere(keep)  # NIfTI voxel coordinates, C order over (X, Y, Z)
    keep_h5 = keep.transpose(2, 1, 0)
    # Boolean indexing of the transposed mask must list voxels in the same order as ijk.
    h5_index = tuple(ijk[:, ::-1].T)

    roi_names = np.full(len(ijk), mask, dtype=object)
    if rois:
        assigned = np.zeros(len(ijk), dtype=bool)
        for name, (stem, labels) in rois.items():
            path = require_file(roi_dir / f"{stem}.nii.gz", f"ROI file '{stem}'")
            vol = np.asarray(nib.load(path).get_fdata())
            if vol.shape != mask_vol.shape:
                raise DataError(f"{path}: shape {vol.shape} differs from mask {mask_vol.shape}")
            inside = np.isin(vol[keep], list(labels)) & ~assigned
            roi_names[inside] = name
            assigned |= inside

    if sessions is None:
        found = sorted(beta_dir.glob("betas_session*.hdf5")) if beta_dir.is_dir() else []
        sessions = [int(re.search(r"(\d+)", p.stem.replace("betas_session", "")).group(1)) for p in found]
        if not sessions:
            raise DataError(f"{beta_dir}: no betas_sessionNN.hdf5 files found for {tag}")
    trial_images: list[np.ndarray] = []
    trial_betas: list[np.ndarray] = []
    for s in progress(list(sessions), desc=f"NSD {tag} sessions"):
        path = beta_dir / f"betas_session{int(s):02d}.hdf5"
        with open_hdf5(path, f"NSD betas for session {s}") as f:
            ds = hdf5_dataset(f, "betas", path)
            if tuple(ds.shape[1:]) != keep_h5.shape:
                raise DataError(
                    f"{path}: betas volume {tuple(ds.shape[1:])} does not match mask {mask_vol.shape} "
                    f"reversed {keep_h5.shape} (h5py order); wrong space or subject?"
                )
            n_trials = int(ds.shape[0])
            if n_trials > TRIALS_PER_SESSION:
                raise DataError(f"{path}: {n_trials} trials, more than the {TRIALS_PER_SESSION} of an NSD session")
            first = (int(s) - 1) * TRIALS_PER_SESSION
            if first + n_trials > order.size:
                raise DataError(f"{path}: session {s} lies beyond the {order.size} trials of masterordering")
            # read in chunks of trials: a real session volume is ~1 GB of int16
            vox = np.concatenate(
                [
                    read_hdf5(ds, path, slice(j, min(j + _CHUNK, n_trials)))[(slice(None),) + h5_index]
                    for j in range(0, n_trials, _CHUNK)
                ]
            ).astype(np.float32) / 300.0  # trials x V
        if zscore:
            mu = vox.mean(axis=0)
            sd = vox.std(axis=0)
            vox = np.where(sd > 0, (vox - mu) / np.where(sd > 0, sd, 1.0), np.nan)
        ten_k = order[first : first + n_trials]  # 1-based into subjectim columns
        ids = subjectim[k - 1, ten_k - 1]  # 1-based 73k ids
        trial_images.append(ids)
        trial_betas.append(vox)
    ids_all = np.concatenate(trial_images)
    betas_all = np.concatenate(trial_betas, axis=0)

    with open_hdf5(stim_path, "NSD stimuli (nsd_stimuli.hdf5)") as f:
        brick = hdf5_dataset(f, "imgBrick", stim_path)
        _check_range(ids_all, brick.shape[0], design_path, f"subjectim[{k}]")
        images = np.unique(ids_all)
        chunks = []
        for j in progress(range(0, len(images), _CHUNK), desc="NSD stimuli"):
            block = read_hdf5(brick, stim_path, images[j : j + _CHUNK] - 1)  # h5py needs increasing indices
            if resolution is not None:
                block = resize_images(list(block), resolution, str(stim_path))
            chunks.append(block)
        stimuli = np.concatenate(chunks)

    pos = np.searchsorted(images, ids_all)
    counts = np.bincount(pos, minlength=len(images))
    n_rep = int(counts.max())
    trials = np.full((len(images), n_rep, betas_all.shape[1]), np.nan, dtype=np.float64)
    slot = np.zeros(len(images), dtype=np.int64)
    for t, p in enumerate(pos):
        trials[p, slot[p]] = betas_all[t]
        slot[p] += 1

    targets = pd.DataFrame(
        {
            "target": [f"v{x}_{y}_{z}" for x, y, z in ijk],
            "roi": roi_names.astype(str),
            "x": ijk[:, 0],
            "y": ijk[:, 1],
            "z": ijk[:, 2],
        }
    )
    split = np.where(np.isin(images, shared), "test", "train") if shared is not None else None
    attrs = {
        "source": "nsd",
        "subject": tag,
        "simulated": False,
        "sessions": [int(s) for s in sessions],
        "betas": betas,
        "space": space,
        "mask": mask,
        "units": "z-scored betas (per voxel, within session)" if zscore else "percent signal change",
        "image_id_base": "nsd 73k id, 1-based",
        "path": str(root),
    }
    if shared is not None:
        attrs["split_rule"] = "shared-1000 images are test"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # voxels invalid in every session: all-NaN
        responses = np.nanmean(trials, axis=1)
    return Dataset(
        stimuli,
        responses,
        targets,
        trials=trials,
        image_ids=[f"nsd{i:05d}" for i in images],
        split=split,
        attrs=attrs,
    )
