"""NSD, Algonauts and generic loaders on fixtures written in the real formats."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from brainprobe.data import load_algonauts, load_generic, load_nsd
from brainprobe.errors import DataError

from .conftest import decode_images, encode_image, voxel_signal, write_algonauts, write_nsd


# ----------------------------------------------------------------------------------- NSD
def test_nsd_counts_pairing_and_axis_order(nsd_root):
    root, info = nsd_root
    ds = load_nsd(root, 1, zscore=False, rois={"V1": ("prf-visualrois", [1, 2]), "hV4": ("prf-visualrois", [5])})
    assert ds.n_images == 500 and ds.n_repeats == 3
    assert ds.n_targets == len(info["inside"])
    # images: every image decodes to the 1-based 73k id in its image_id
    ids = np.array([int(s[3:]) for s in ds.image_ids])
    assert np.array_equal(decode_images(ds.stimuli), ids)
    assert set(ids) == set(info["chosen"].tolist())
    # responses: exact known signal at the NIfTI coordinates (axis reversal handled)
    coords = ds.targets[["x", "y", "z"]].to_numpy()
    assert sorted(map(tuple, coords)) == sorted(info["inside"])
    expected = np.round(voxel_signal(ids, coords) * 300) / 300
    np.testing.assert_allclose(ds.responses, expected, atol=1e-5)
    assert np.all(np.isfinite(ds.trials))  # 3 repeats of each image
    # shared images are the test split
    assert set(ids[ds.test_index]) == set(info["shared"].tolist())
    roi = dict(zip(map(tuple, coords), ds.targets["roi"]))
    assert roi[(1, 2, 3)] == "V1" and roi[(3, 4, 5)] == "V1" and roi[(2, 2, 4)] == "hV4"
    assert roi[(3, 3, 3)] == "nsdgeneral"
    assert ds.attrs["source"] == "nsd" and ds.attrs["sessions"] == [1, 2]


def test_nsd_zscored_within_session_and_resize(nsd_root):
    root, _ = nsd_root
    ds = load_nsd(root, "subj01", resolution=16)
    assert ds.stimuli.shape[1:] == (16, 16, 3)
    ids = np.array([int(s[3:]) for s in ds.image_ids])
    assert np.array_equal(decode_images(ds.stimuli), ids)
    coords = ds.targets[["x", "y", "z"]].to_numpy()
    sig = voxel_signal(ids, coords)
    r = [np.corrcoef(ds.responses[:, v], sig[:, v])[0, 1] for v in range(ds.n_targets)]
    assert min(r) > 0.999  # z-scoring is affine per session; pairing is intact
    assert np.all(np.abs(np.nanmean(ds.trials, axis=(0, 1))) < 0.05)
    assert np.all(ds.noise_ceiling > 0.99)  # no trial noise in this fixture


def test_nsd_uses_sessions_present_and_noisy_ceiling(tmp_path):
    info = write_nsd(tmp_path, sessions=(1,), noise=0.5, seed=3)
    ds = load_nsd(tmp_path, 1)  # design lists 40 sessions; only session 1 exists
    assert ds.attrs["sessions"] == [1]
    # 750 trials of 500 images x 3 repeats: some images have 1-3 repeats in session 1
    counts = np.isfinite(ds.trials[:, :, 0]).sum(axis=1)
    assert counts.sum() == 750 and counts.min() >= 1 and counts.max() <= 3 and (counts < 3).any()
    assert np.all((ds.noise_ceiling > 0.3) & (ds.noise_ceiling < 1.0))
    assert len(info["inside"]) == ds.n_targets


def test_nsd_missing_file(tmp_path, nsd_root):
    root, _ = nsd_root
    copy = tmp_path / "nsd"
    shutil.copytree(root, copy)
    (copy / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat").unlink()
    with pytest.raises(DataError, match=r"nsd_expdesign\.mat.*not found"):
        load_nsd(copy, 1)


def test_nsd_missing_session_requested(nsd_root):
    root, _ = nsd_root
    with pytest.raises(DataError, match=r"betas_session05\.hdf5.*not found"):
        load_nsd(root, 1, sessions=[1, 5])


def test_nsd_truncated_hdf5(tmp_path, nsd_root):
    root, _ = nsd_root
    copy = tmp_path / "nsd"
    shutil.copytree(root, copy)
    stim = copy / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5"
    data = stim.read_bytes()
    stim.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"nsd_stimuli\.hdf5.*(truncated|corrupt)") as err:
        load_nsd(copy, 1)
    assert "\n" not in str(err.value)


def test_nsd_out_of_range_index(tmp_path):
    from scipy.io import loadmat, savemat

    write_nsd(tmp_path, n_brick=520)
    design = tmp_path / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat"
    mat = loadmat(design)
    mat["subjectim"][0, 0] = 521  # 1-based id beyond the 520 images of imgBrick
    savemat(design, {k: mat[k] for k in ("masterordering", "subjectim", "sharedix")})
    with pytest.raises(DataError, match=r"nsd_expdesign\.mat.*index 521 outside 1\.\.520"):
        load_nsd(tmp_path, 1)
    mat["subjectim"][0, 0] = 1
    mat["masterordering"][0, 3] = 0  # 0 is not a valid 1-based index
    savemat(design, {k: mat[k] for k in ("masterordering", "subjectim", "sharedix")})
    with pytest.raises(DataError, match=r"masterordering.*index 0 outside 1\.\.10000"):
        load_nsd(tmp_path, 1)


def test_nsd_bad_subject(nsd_root):
    with pytest.raises(DataError, match="subject must be 1-8"):
        load_nsd(nsd_root[0], 9)


# ----------------------------------------------------------------------------------- Algonauts
def test_algonauts_counts_pairing_rois(tmp_path):
    info = write_algonauts(tmp_path)
    ds = load_algonauts(tmp_path, 1)
    assert ds.n_images == 12 and ds.n_targets == 9 + 7 and ds.n_repeats == 0
    rows = decode_images(ds.stimuli)
    assert np.array_equal(rows, np.arange(12))
    np.testing.assert_array_equal(ds.responses[:, :9], info["lh"][rows])
    np.testing.assert_array_equal(ds.responses[:, 9:], info["rh"][rows])
    expected_ids = [f"train-{i + 1:04d}_nsd-{n:05d}" for i, n in enumerate(info["nsd_ids"])]
    assert list(ds.image_ids) == expected_ids
    t = ds.targets.set_index("target")
    assert t.loc["lh_00000", "roi"] == "V1v" and t.loc["lh_00001", "roi"] == "V1v"
    assert t.loc["lh_00002", "roi"] == "hV4" and t.loc["lh_00005", "roi"] == "FFA-1"
    assert t.loc["rh_00000", "roi"] == "V1d" and t.loc["rh_00003", "roi"] == "OFA"
    assert t.loc["rh_00006", "roi"] == "unlabelled" and t.loc["rh_00006", "hemisphere"] == "rh"
    assert np.isnan(ds.noise_ceiling).all()


def test_algonauts_mismatched_counts(tmp_path):
    write_algonauts(tmp_path)
    img_dir = tmp_path / "subj01" / "training_split" / "training_images"
    sorted(img_dir.iterdir())[-1].unlink()
    with pytest.raises(DataError, match=r"training_images: 11 images but 12 rows"):
        load_algonauts(tmp_path, "subj01")


# ----------------------------------------------------------------------------------- generic
def _write_folder(folder: Path, n: int, size: int = 20) -> None:
    from PIL import Image

    folder.mkdir()
    for i in range(n):
        Image.fromarray(encode_image(i, size)).save(folder / f"im_{i:03d}.png")


def test_generic_folder_npy_csv(tmp_path):
    import pandas as pd

    _write_folder(tmp_path / "imgs", 10)
    resp = np.arange(10, dtype=np.float64)[:, None] * np.array([1.0, -2.0, 3.0])
    np.save(tmp_path / "resp.npy", resp)
    rois = pd.DataFrame({"roi": ["V1", "V1", "FFA"], "hemisphere": ["lh", "rh", "lh"]})
    rois.to_csv(tmp_path / "rois.csv", index=False)
    ds = load_generic(tmp_path / "imgs", tmp_path / "resp.npy", rois=tmp_path / "rois.csv")
    idx = decode_images(ds.stimuli)
    np.testing.assert_array_equal(ds.responses, resp[idx])
    assert np.array_equal(idx, np.arange(10))
    assert ds.rois == ["V1", "FFA"] and list(ds.targets["hemisphere"]) == ["lh", "rh", "lh"]


def test_generic_h5_trials_and_nc(tmp_path):
    import h5py
    import xarray as xr

    stim = np.stack([encode_image(i, 16) for i in range(30)])
    rng = np.random.default_rng(0)
    trials = np.arange(30.0)[:, None, None] + rng.normal(size=(30, 4, 5))
    with h5py.File(tmp_path / "stim.h5", "w") as f:
        f["stimuli"] = stim
    xr.Dataset({"trials": (("image", "repeat", "target"), trials)}).to_netcdf(tmp_path / "resp.nc", engine="h5netcdf")
    ds = load_generic(tmp_path / "stim.h5", tmp_path / "resp.nc")
    assert ds.n_repeats == 4 and np.array_equal(decode_images(ds.stimuli), np.arange(30))
    np.testing.assert_allclose(ds.responses, trials.mean(axis=1))
    assert np.all(ds.noise_ceiling > 0.95)


def test_generic_mismatched_counts(tmp_path):
    _write_folder(tmp_path / "imgs", 10)
    np.save(tmp_path / "resp.npy", np.zeros((9, 3)))
    with pytest.raises(DataError, match=r"resp\.npy: 9 response rows but 10 images"):
        load_generic(tmp_path / "imgs", tmp_path / "resp.npy")


def test_generic_all_nan(tmp_path):
    _write_folder(tmp_path / "imgs", 4)
    np.save(tmp_path / "resp.npy", np.full((4, 3), np.nan))
    with pytest.raises(DataError, match=r"resp\.npy: every response is NaN"):
        load_generic(tmp_path / "imgs", tmp_path / "resp.npy")


def test_generic_unreadable_image(tmp_path):
    _write_folder(tmp_path / "imgs", 4)
    (tmp_path / "imgs" / "im_002.png").write_bytes(b"not a png at all")
    np.save(tmp_path / "resp.npy", np.zeros((4, 3)))
    with pytest.raises(DataError, match=r"im_002\.png: unreadable image"):
        load_generic(tmp_path / "imgs", tmp_path / "resp.npy")


def test_generic_missing_file(tmp_path):
    _write_folder(tmp_path / "imgs", 4)
    with pytest.raises(DataError, match=r"nope\.npy: responses file not found"):
        load_generic(tmp_path / "imgs", tmp_path / "nope.npy")


def test_generic_truncated_hdf5(tmp_path):
    import h5py

    with h5py.File(tmp_path / "stim.h5", "w") as f:
        f["images"] = np.stack([encode_image(i, 64) for i in range(50)])
    data = (tmp_path / "stim.h5").read_bytes()
    (tmp_path / "stim.h5").write_bytes(data[: len(data) // 3])
    np.save(tmp_path / "resp.npy", np.zeros((50, 2)))
    with pytest.raises(DataError, match=r"stim\.h5.*(truncated|corrupt)"):
        load_generic(tmp_path / "stim.h5", tmp_path / "resp.npy")


def test_generic_sizes_differ_need_resolution(tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.fromarray(encode_image(0, 20)).save(tmp_path / "imgs" / "a.png")
    Image.fromarray(encode_image(1, 30)).save(tmp_path / "imgs" / "b.png")
    np.save(tmp_path / "resp.npy", np.array([[0.0], [1.0]]))
    with pytest.raises(DataError, match="pass resolution="):
        load_generic(tmp_path / "imgs", tmp_path / "resp.npy")
    ds = load_generic(tmp_path / "imgs", tmp_path / "resp.npy", resolution=24)
    assert ds.stimuli.shape == (2, 24, 24, 3) and list(decode_images(ds.stimuli)) == [0, 1]


def test_generic_groups_from_csv_txt_and_array(tmp_path):
    import pandas as pd

    n = 20
    _write_folder(tmp_path / "imgs", n)
    np.save(tmp_path / "resp.npy", np.random.default_rng(0).normal(size=(n, 3)))
    labels = [f"photo{i // 4}" for i in range(n)]  # 5 photos, 4 crops each
    pd.DataFrame({"image": range(n), "group": labels}).to_csv(tmp_path / "groups.csv", index=False)
    (tmp_path / "groups.txt").write_text("\n".join(labels) + "\n")
    for groups in (tmp_path / "groups.csv", tmp_path / "groups.txt", labels):
        ds = load_generic(tmp_path / "imgs", tmp_path / "resp.npy", groups=groups)
        assert list(ds.groups) == labels
        sides = pd.DataFrame({"g": ds.groups, "s": ds.split}).groupby("g")["s"].nunique()
        assert (sides == 1).all() and len(ds.test_index) == 4  # round(0.2 * 5) = 1 photo of 4 crops
    with pytest.raises(DataError, match="19 group labels but 20 images"):
        load_generic(tmp_path / "imgs", tmp_path / "resp.npy", groups=labels[:-1])
    (tmp_path / "split.txt").write_text("\n".join(["test"] + ["train"] * (n - 1)))
    with pytest.raises(DataError, match="group 'photo0' has images in both train and test"):
        load_generic(tmp_path / "imgs", tmp_path / "resp.npy", groups=labels, split=tmp_path / "split.txt")
    pd.DataFrame({"photo": labels}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="needs a 'group' column"):
        load_generic(tmp_path / "imgs", tmp_path / "resp.npy", groups=tmp_path / "bad.csv")
