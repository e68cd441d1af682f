"""Dataset construction checks, selection helpers and the netCDF round trip."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from brainprobe.data import Dataset
from brainprobe.errors import DataError


def make(n=12, t=5, r=3, seed=0, **kw):
    rng = np.random.default_rng(seed)
    stim = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    trials = rng.normal(size=(n, 1, t)) + rng.normal(size=(n, r, t)) * 0.5
    targets = pd.DataFrame({"target": [f"v{i}" for i in range(t)], "roi": ["V1", "V1", "V4", "V4", "IT"][:t],
                            "x": np.arange(t), "hemisphere": ["lh"] * t})
    return Dataset(stim, None, targets, trials=trials, attrs={"source": "test", "subject": "s1"}, **kw)


def test_round_trip_is_identical(tmp_path):
    ds = make()
    ds.trials[0, 2, 1] = np.nan  # a missing repeat survives the trip
    path = ds.save(tmp_path / "d.nc")
    back = Dataset.load(path)
    for name in ("stimuli", "responses", "image_ids", "split"):
        a, b = getattr(ds, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    np.testing.assert_array_equal(ds.trials, back.trials)  # NaN-aware equality
    np.testing.assert_array_equal(ds.noise_ceiling, back.noise_ceiling)
    pd.testing.assert_frame_equal(ds.targets, back.targets)
    assert back.attrs == ds.attrs
    assert back.stimuli.dtype == np.uint8


def test_defaults_and_properties():
    ds = make()
    assert ds.n_images == 12 and ds.n_targets == 5 and ds.n_repeats == 3
    assert ds.rois == ["V1", "V4", "IT"]
    assert len(ds.test_index) == round(0.2 * 12) and len(ds.train_index) + len(ds.test_index) == 12
    assert set(ds.train_index).isdisjoint(ds.test_index)
    assert ds.attrs["noise_ceiling_method"] == "ncsnr" and ds.attrs["simulated"] is False
    assert np.all((ds.noise_ceiling >= 0) & (ds.noise_ceiling <= 1))
    x = ds.images([0, 1])
    assert tuple(x.shape) == (2, 3, 8, 8) and float(x.max()) <= 1.0


def test_roi_index_and_target_specs():
    ds = make()
    assert list(ds.roi_index("V4")) == [2, 3]
    assert list(ds.target_index(["IT", "V1"])) == [4, 0, 1]
    assert list(ds.target_index([4, -1])) == [4, 4]
    assert list(ds.target_index(None)) == [0, 1, 2, 3, 4]
    with pytest.raises(DataError, match="unknown ROI 'FFA'.*V1, V4, IT"):
        ds.roi_index("FFA")
    with pytest.raises(DataError, match="out of range"):
        ds.target_index([5])


def test_subset_train_test():
    ds = make()
    sub = ds.subset(ds.test_index, "V4")
    assert sub.n_images == len(ds.test_index) and sub.n_targets == 2
    np.testing.assert_array_equal(sub.responses, ds.responses[np.ix_(ds.test_index, [2, 3])])
    np.testing.assert_array_equal(sub.noise_ceiling, ds.noise_ceiling[[2, 3]])
    assert list(sub.split) == ["test"] * sub.n_images
    assert ds.train().n_images == len(ds.train_index)


def test_image_conversions():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (4, 6, 6), dtype=np.uint8)
    ds = Dataset(gray, np.zeros((4, 1)) + np.arange(4)[:, None])
    assert ds.stimuli.shape == (4, 6, 6, 3) and np.array_equal(ds.stimuli[..., 2], gray)
    deep = (gray.astype(np.uint16) * 257)[..., None].repeat(3, -1)
    assert np.array_equal(Dataset(deep, np.arange(4.0)[:, None]).stimuli[..., 0], gray)
    rgba = np.concatenate([gray[..., None].repeat(3, -1), np.full((4, 6, 6, 1), 9, np.uint8)], -1)
    with pytest.warns(UserWarning, match="alpha channel dropped"):
        assert Dataset(rgba, np.arange(4.0)[:, None]).stimuli.shape[-1] == 3
    with pytest.raises(DataError, match=r"float images must lie in \[0, 1\]"):
        Dataset(gray.astype(np.float32), np.arange(4.0)[:, None])
    with pytest.raises(DataError, match="1, 3 or 4 channels"):
        Dataset(np.zeros((4, 6, 6, 2), np.uint8), np.arange(4.0)[:, None])


def test_nan_targets_dropped_with_count():
    ds = make()
    resp = ds.responses.copy()
    resp[3, 1] = np.nan
    resp[0, 4] = np.inf
    with pytest.warns(UserWarning, match="dropped 2 of 5 targets"):
        d2 = Dataset(ds.stimuli, resp, ds.targets)
    assert list(d2.targets["target"]) == ["v0", "v2", "v3"]


def test_all_nan_and_mismatched_counts_raise():
    stim = np.zeros((4, 6, 6, 3), np.uint8)
    with pytest.raises(DataError, match="every target has NaN or Inf"):
        Dataset(stim, np.full((4, 3), np.nan))
    with pytest.raises(DataError, match="4 images but responses for 3 images"):
        Dataset(stim, np.zeros((3, 2)))
    with pytest.raises(DataError, match="2 response columns but 3 rows"):
        Dataset(stim, np.zeros((4, 2)), pd.DataFrame({"target": ["a", "b", "c"], "roi": "x"}))
    with pytest.raises(DataError, match="split labels must be 'train' or 'test'"):
        Dataset(stim, np.zeros((4, 2)), split=["train", "val", "test", "test"])
    with pytest.raises(DataError, match="target ids must be unique"):
        Dataset(stim, np.zeros((4, 2)), pd.DataFrame({"target": ["a", "a"], "roi": "x"}))


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing\.nc: dataset file not found"):
        Dataset.load(tmp_path / "missing.nc")
    (tmp_path / "junk.nc").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"junk\.nc: not a readable netCDF"):
        Dataset.load(tmp_path / "junk.nc")
    import xarray as xr

    xr.Dataset({"a": ("x", [1, 2])}).to_netcdf(tmp_path / "other.nc", engine="h5netcdf")
    with pytest.raises(DataError, match="not a brainprobe dataset"):
        Dataset.load(tmp_path / "other.nc")


def test_summary_without_trials():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = Dataset(np.zeros((3, 4, 4, 3), np.uint8), np.eye(3))
    assert "n/a" in ds.summary() and "SIMULATED" not in ds.summary()
    assert np.isnan(ds.noise_ceiling).all() and ds.n_repeats == 0


# --- groups (e.g. the photo each crop was cut from) -------------------------------------------------


def _sides(ds):
    table = pd.DataFrame({"g": ds.groups, "s": ds.split})
    return table.groupby("g")["s"].nunique()


def test_grouped_default_split_keeps_groups_on_one_side():
    from brainprobe.data import default_split

    groups = np.repeat([f"photo{i}" for i in range(10)], [1, 2, 3, 4, 2, 3, 1, 5, 2, 1])
    ds = make(n=len(groups), groups=groups)
    assert (_sides(ds) == 1).all()
    test_groups = set(ds.groups[ds.test_index])
    assert len(test_groups) == 2 and ds.n_groups == 10  # round(0.2 * 10) groups
    assert "groups: 10" in ds.summary()
    # per-image behaviour unchanged without groups (same seed, same split)
    np.testing.assert_array_equal(default_split(24, 0.25, 3), default_split(24, 0.25, 3, groups=[str(i) for i in range(24)]))
    # at least one test group and one train group whenever possible
    split = default_split(6, 0.05, 0, groups=["a", "a", "a", "b", "b", "b"])
    assert sorted(set(split)) == ["test", "train"]


def test_given_split_with_a_group_on_both_sides_raises():
    groups = ["a", "a", "b", "b", "c", "c"]
    with pytest.raises(DataError, match="group 'b' has images in both train and test"):
        make(n=6, groups=groups, split=["train", "train", "train", "test", "test", "test"])
    ok = make(n=6, groups=groups, split=["train", "train", "test", "test", "train", "train"])
    assert list(ok.groups) == groups
    with pytest.raises(DataError, match="6 images but 5 group labels"):
        make(n=6, groups=groups[:5])


def test_groups_round_trip_subset_and_old_files(tmp_path):
    groups = np.repeat(["p0", "p1", "p2", "p3", "p4", "p5"], 2)
    ds = make(n=12, groups=groups)
    back = Dataset.load(ds.save(tmp_path / "g.nc"))
    assert back.groups.dtype == object and np.array_equal(back.groups, ds.groups)
    np.testing.assert_array_equal(back.split, ds.split)
    for part in (ds.train(), ds.test(), ds.subset([0, 1, 5])):
        assert len(part.groups) == part.n_images
    np.testing.assert_array_equal(ds.test().groups, ds.groups[ds.test_index])
    # a file written before groups existed loads with one group per image
    import xarray as xr

    with xr.open_dataset(tmp_path / "g.nc", engine="h5netcdf") as x:
        old = x.load().drop_vars("groups")
    old.to_netcdf(tmp_path / "old.nc", engine="h5netcdf")
    loaded = Dataset.load(tmp_path / "old.nc")
    np.testing.assert_array_equal(loaded.groups, loaded.image_ids)
    assert loaded.n_groups == 12
