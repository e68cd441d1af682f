"""Fixtures for brainprobe.data tests: small files written in the real NSD / Algonauts layouts.

Every fixture image is a constant colour that encodes its own index (R = i % 256,
G = i // 256, B = 77), so any mispairing of images and responses is detectable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def encode_image(index: int, size: int = 24) -> np.ndarray:
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[..., 0] = index % 256
    img[..., 1] = index // 256
    img[..., 2] = 77
    return img


def decode_images(stimuli: np.ndarray) -> np.ndarray:
    """Index encoded in each image (uses the mean colour, robust to resizing)."""
    s = stimuli.reshape(len(stimuli), -1, 3).astype(np.float64).mean(axis=1)
    return np.round(s[:, 0]).astype(int) + 256 * np.round(s[:, 1]).astype(int)


def voxel_signal(image_ids: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Known response (percent signal change) of voxels at NIfTI coords (V x 3) to images (N)."""
    ids = np.asarray(image_ids, dtype=np.float64)[:, None]
    c = coords.astype(np.float64)
    return np.sin(0.37 * ids + c[:, 0]) + 0.5 * np.cos(0.11 * ids * (1 + c[:, 1])) + 0.1 * c[:, 2]


NSD_SHAPE = (5, 6, 7)  # NIfTI X, Y, Z (h5py reads betas as Z, Y, X)


def write_nsd(root: Path, *, n_brick: int = 520, n_images: int = 500, subject: int = 1, sessions=(1, 2),
              noise: float = 0.0, seed: int = 0) -> dict:
    """A miniature NSD release with the real file names, variables and 1-based indexing."""
    import h5py
    import nibabel as nib
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    stim_dir = root / "nsddata_stimuli" / "stimuli" / "nsd"
    stim_dir.mkdir(parents=True)
    with h5py.File(stim_dir / "nsd_stimuli.hdf5", "w") as f:
        f.create_dataset("imgBrick", data=np.stack([encode_image(i + 1) for i in range(n_brick)]))  # 1-based ids

    # design: the subject's first n_images 10k-slots map to distinct 73k ids; sessions 1-2 show
    # each of them 3 times in random order (1500 trials = 2 x 750)
    subjectim = np.ones((8, 10000), dtype=np.int64)
    chosen = rng.choice(np.arange(1, n_brick + 1), size=n_images, replace=False)
    subjectim[subject - 1, :n_images] = chosen
    order = np.ones(30000, dtype=np.int64)
    shown = rng.permutation(np.repeat(np.arange(1, n_images + 1), 3))
    order[: shown.size] = shown
    shared = np.sort(chosen[:50])
    design_dir = root / "nsddata" / "experiments" / "nsd"
    design_dir.mkdir(parents=True)
    savemat(design_dir / "nsd_expdesign.mat",
            {"masterordering": order[None, :], "subjectim": subjectim, "sharedix": shared[None, :]})

    tag = f"subj{subject:02d}"
    roi_dir = root / "nsddata" / "ppdata" / tag / "func1pt8mm" / "roi"
    roi_dir.mkdir(parents=True)
    mask = -np.ones(NSD_SHAPE)
    mask[1:4, 2:5, 3:6] = 0
    inside = [(1, 2, 3), (3, 4, 5), (2, 2, 4), (1, 4, 3), (3, 3, 3), (2, 3, 5)]
    for c in inside:
        mask[c] = 1
    nib.save(nib.Nifti1Image(mask.astype(np.float32), np.eye(4)), roi_dir / "nsdgeneral.nii.gz")
    labels = np.zeros(NSD_SHAPE)
    labels[1, 2, 3] = 1
    labels[3, 4, 5] = 2
    labels[2, 2, 4] = 5
    nib.save(nib.Nifti1Image(labels.astype(np.float32), np.eye(4)), roi_dir / "prf-visualrois.nii.gz")

    beta_dir = root / "nsddata_betas" / "ppdata" / tag / "func1pt8mm" / "betas_fithrf_GLMdenoise_RR"
    beta_dir.mkdir(parents=True)
    grid = np.argwhere(np.ones(NSD_SHAPE, dtype=bool))  # every voxel, NIfTI coords
    for s in sessions:
        ten_k = order[(s - 1) * 750 : s * 750]
        ids = subjectim[subject - 1, ten_k - 1]
        sig = voxel_signal(ids, grid) + noise * rng.standard_normal((750, len(grid)))
        vol = np.round(sig * 300).astype(np.int16).reshape((750,) + NSD_SHAPE)
        with h5py.File(beta_dir / f"betas_session{s:02d}.hdf5", "w") as f:
            f.create_dataset("betas", data=vol.transpose(0, 3, 2, 1))  # h5py order: Z, Y, X
    return {"inside": inside, "chosen": chosen, "shared": shared, "order": order, "subjectim": subjectim}


@pytest.fixture(scope="session")
def nsd_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("nsd")
    info = write_nsd(root)
    return root, info


def write_algonauts(root: Path, *, n_images: int = 12, n_lh: int = 9, n_rh: int = 7, subject: int = 1) -> dict:
    from PIL import Image

    rng = np.random.default_rng(1)
    base = root / f"subj{subject:02d}"
    img_dir = base / "training_split" / "training_images"
    fmri_dir = base / "training_split" / "training_fmri"
    roi_dir = base / "roi_masks"
    for d in (img_dir, fmri_dir, roi_dir):
        d.mkdir(parents=True)
    nsd_ids = np.sort(rng.choice(np.arange(73000), size=n_images, replace=False))
    for i, nid in enumerate(nsd_ids):
        Image.fromarray(encode_image(i, size=32)).save(img_dir / f"train-{i + 1:04d}_nsd-{nid:05d}.png")
    rows = np.arange(n_images, dtype=np.float32)[:, None]
    lh = rows * 10 + np.arange(n_lh, dtype=np.float32)[None]  # value encodes (image, vertex)
    rh = -(rows * 10 + np.arange(n_rh, dtype=np.float32)[None])
    np.save(fmri_dir / "lh_training_fmri.npy", lh)
    np.save(fmri_dir / "rh_training_fmri.npy", rh)
    np.save(roi_dir / "mapping_prf-visualrois.npy", {0: "Unknown", 1: "V1v", 2: "V1d", 7: "hV4"})
    np.save(roi_dir / "mapping_floc-faces.npy", {0: "Unknown", 1: "OFA", 2: "FFA-1"})
    lh_prf = np.zeros(n_lh)
    lh_prf[[0, 1]] = 1
    lh_prf[2] = 7
    rh_prf = np.zeros(n_rh)
    rh_prf[0] = 2
    lh_faces = np.zeros(n_lh)
    lh_faces[[1, 5]] = 2  # vertex 1 is also V1v: prf-visualrois wins
    rh_faces = np.zeros(n_rh)
    rh_faces[3] = 1
    np.save(roi_dir / "lh.prf-visualrois_challenge_space.npy", lh_prf)
    np.save(roi_dir / "rh.prf-visualrois_challenge_space.npy", rh_prf)
    np.save(roi_dir / "lh.floc-faces_challenge_space.npy", lh_faces)
    np.save(roi_dir / "rh.floc-faces_challenge_space.npy", rh_faces)
    return {"nsd_ids": nsd_ids, "lh": lh, "rh": rh}
