"""Algonauts 2023 challenge loader (NSD-derived), from files the user downloaded.

Layout read under ``root``::

    subjXX/training_split/training_fmri/lh_training_fmri.npy    N x V_lh float (z-scored, repeat-averaged)
    subjXX/training_split/training_fmri/rh_training_fmri.npy    N x V_rh
    subjXX/training_split/training_images/train-0001_nsd-00013.png ...   (sorted name order = fMRI rows)
    subjXX/roi_masks/{lh,rh}.<class>_challenge_space.npy        V label per vertex (0 = none)
    subjXX/roi_masks/mapping_<class>.npy                        dict label -> ROI name (pickled)

Each vertex gets the ROI of the first class (in ``ROI_CLASSES`` order) that labels it, else
``unlabelled``. The challenge's test images have no public fMRI, so the split is a seeded
random 20 % of the training images. No repeats are released, so there is no noise ceiling.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from brainprobe._progress import progress
from brainprobe.data._io import IMAGE_SUFFIXES, read_image, require_file, resize_images
from brainprobe.errors import DataError

ROI_CLASSES = ("prf-visualrois", "floc-faces", "floc-bodies", "floc-places", "floc-words", "streams")


def _load_npy(path: Path, what: str, allow_pickle: bool = False) -> np.ndarray:
    require_file(path, what)
    try:
        return np.load(path, allow_pickle=allow_pickle)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: unreadable .npy ({exc})") from None


def load_algonauts(root: str | Path, subject: int | str, *, resolution: int | None = None, seed: int = 0):
    """Load one Algonauts 2023 subject's training images and fMRI as a Dataset.

    Parameters
    ----------
    root : path
        Folder holding ``subj01`` ... ``subj08``.
    subject : int or str
        1-8 or ``"subj01"``.
    resolution : int, optional
        Resize images to this side (px); default keeps their size (425 px in the release).
    seed : int
        Seed of the 20 % test split. The release's test split has no public fMRI, so the test
        images are a seeded random 20 % of its training images (not NSD's shared-1000); every
        image is a distinct NSD photo and its own group.

    Returns
    -------
    Dataset
        targets: ``target`` (``lh_00012``), ``roi``, ``hemisphere``; image ids are the file
        names (``train-0001_nsd-00013``); attrs ``source="algonauts2023"``.
    """
    from brainprobe.data.dataset import Dataset, default_split

    m = re.fullmatch(r"(?:subj)?0*([1-8])", str(subject))
    if not m:
        raise DataError(f"Algonauts subject must be 1-8 or 'subj01'..'subj08', got {subject!r}")
    tag = f"subj{int(m.group(1)):02d}"
    base = Path(root) / tag
    if not base.is_dir():
        raise DataError(f"{base}: Algonauts subject folder not found")
    fmri_dir = base / "training_split" / "training_fmri"
    img_dir = base / "training_split" / "training_images"
    roi_dir = base / "roi_masks"

    parts, target_rows = [], []
    for hemi in ("lh", "rh"):
        path = fmri_dir / f"{hemi}_training_fmri.npy"
        data = _load_npy(path, f"{hemi} training fMRI")
        if data.ndim != 2:
            raise DataError(f"{path}: fMRI must be images x vertices, got shape {data.shape}")
        n_vert = data.shape[1]
        roi = np.full(n_vert, "unlabelled", dtype=object)
        assigned = np.zeros(n_vert, dtype=bool)
        for cls in ROI_CLASSES:
            lab_path = roi_dir / f"{hemi}.{cls}_challenge_space.npy"
            map_path = roi_dir / f"mapping_{cls}.npy"
            if not lab_path.is_file():
                continue
            labels = _load_npy(lab_path, f"ROI labels {cls}").astype(np.int64).reshape(-1)
            if labels.size != n_vert:
                raise DataError(f"{lab_path}: {labels.size} labels but {n_vert} vertices in {path.name}")
            mapping = _load_npy(map_path, f"ROI name mapping {cls}", allow_pickle=True).item()
            for value in np.unique(labels[labels > 0]):
                if int(value) not in mapping:
                    raise DataError(f"{map_path}: no name for label {int(value)} used in {lab_path.name}")
                sel = (labels == value) & ~assigned
                roi[sel] = str(mapping[int(value)])
                assigned |= sel
        parts.append(data)
        target_rows.append(
            pd.DataFrame({"target": [f"{hemi}_{i:05d}" for i in range(n_vert)], "roi": roi, "hemisphere": hemi})
        )
    if parts[0].shape[0] != parts[1].shape[0]:
        raise DataError(f"{fmri_dir}: lh has {parts[0].shape[0]} images but rh {parts[1].shape[0]}")
    responses = np.concatenate(parts, axis=1)

    if not img_dir.is_dir():
        raise DataError(f"{img_dir}: training image folder not found")
    files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) != responses.shape[0]:
        raise DataError(
            f"{img_dir}: {len(files)} images but {responses.shape[0]} rows in {fmri_dir / 'lh_training_fmri.npy'}"
        )
    images = [read_image(p) for p in progress(files, desc=f"Algonauts {tag} images")]
    stimuli = resize_images(images, resolution, str(img_dir))
    ids = [p.stem for p in files]  # e.g. train-0001_nsd-00013 (the release's own naming)
    attrs = {
        "source": "algonauts2023",
        "subject": tag,
        "simulated": False,
        "units": "z-scored betas (within session), averaged over repeats",
        "image_id_base": "Algonauts file name (train-NNNN_nsd-NNNNN)",
        "split_rule": f"random 20% test of the training images, seed {seed}",
        "path": str(base),
    }
    return Dataset(
        stimuli,
        responses,
        pd.concat(target_rows, ignore_index=True),
        image_ids=ids,
        split=default_split(len(files), 0.2, seed),
        attrs=attrs,
    )
