"""The 92-image RDM benchmark (shipped) and the generic RDM-benchmark folder loader."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.io
import scipy.spatial.distance

from brainprobe.data import load_rdm_benchmark
from brainprobe.data.rdm_benchmark import KRIEGESKORTE92, as_rdm_vector, squareform_vector
from brainprobe.errors import DataError

pytest.importorskip("rsatoolbox")


@pytest.fixture(scope="module")
def bench():
    return load_rdm_benchmark("kriegeskorte92")


def test_images_categories_and_rdms(bench):
    assert bench.images.shape == (92, 175, 175, 3) and bench.images.dtype == np.uint8
    assert bench.n_images == 92 and len(bench.image_ids) == 92
    assert bench.human.n_rdm == 8 and bench.human.n_cond == 92
    assert list(bench.human.rdm_descriptors["subject"]) == ["BE", "BE", "KO", "KO", "SN", "SN", "TI", "TI"]
    assert list(bench.human.rdm_descriptors["session"]) == [1, 2] * 4
    assert set(bench.human.rdm_descriptors["species"]) == {"human"}
    assert bench.monkey.n_rdm == 1 and list(bench.monkey.rdm_descriptors["species"]) == ["monkey"]
    assert bench.attrs["simulated"] is False and "Kriegeskorte" in bench.attrs["citation"]
    assert "REAL" in str(bench)


def test_face_flag_marks_the_face_images(bench):
    c = bench.categories
    assert c["face"].dtype == bool and int(c["face"].sum()) == 24
    # the categoryVectors column, the per-stimulus flag and the category label agree
    assert (c["face"] == c["stim_face"]).all()
    assert set(c.loc[c["face"], "category"]) == {"human face", "nonhuman face"}
    assert not c.loc[~c["face"], "category"].str.contains("face").any()
    assert (c["animate"] != c["inanim"]).all() and int(c["animate"].sum()) == 48


def test_squareform_vectors_round_trip_a_constructed_matrix():
    rng = np.random.default_rng(0)
    a = rng.random((92, 92))
    m = a + a.T
    np.fill_diagonal(m, 0)
    v = squareform_vector(m)
    assert v.shape == (4186,)
    np.testing.assert_array_equal(v, scipy.spatial.distance.squareform(m, checks=False))
    # MATLAB squareform order is the column-wise lower triangle: (2,1), (3,1), ..., (92,1), (3,2), ...
    matlab = np.concatenate([m[j + 1 :, j] for j in range(91)])
    np.testing.assert_array_equal(v, matlab)
    np.testing.assert_array_equal(as_rdm_vector(m, 92, "m"), v)
    np.testing.assert_array_equal(as_rdm_vector(matlab, 92, "v"), v)
    np.testing.assert_array_equal(scipy.spatial.distance.squareform(v), m)


def test_fig1_vectors_are_read_in_the_right_order(bench):
    """The paper's pooled human IT RDM (a squareform vector) equals the mean of the 4 subjects'
    RDMs (92 x 92 matrices): only the right vector order can make them agree exactly."""
    mean_subjects = bench.subject_rdms().dissimilarities.mean(axis=0)
    fig1 = bench.extra["human_fig1"].dissimilarities[0]
    assert np.corrcoef(fig1, mean_subjects)[0, 1] > 0.9999
    i, j = np.triu_indices(92, 1)
    transposed = fig1[np.lexsort((i, j))]  # column-major upper triangle: the wrong order
    assert abs(np.corrcoef(transposed, mean_subjects)[0, 1]) < 0.1


def test_subject_rdms_average_sessions(bench):
    s = bench.subject_rdms()
    assert list(s.rdm_descriptors["subject"]) == ["BE", "KO", "SN", "TI"]
    np.testing.assert_allclose(s.dissimilarities[0], bench.human.dissimilarities[:2].mean(0))


def test_sha256_is_checked(tmp_path, monkeypatch):
    from brainprobe.data import rdm_benchmark

    for p in KRIEGESKORTE92.glob("*.mat"):
        shutil.copy(p, tmp_path / p.name)
    with open(tmp_path / "92_brainRDMs.mat", "ab") as f:
        f.write(b"x")
    with pytest.raises(DataError, match="sha256"):
        rdm_benchmark._load_kriegeskorte92(tmp_path)
    (tmp_path / "92_brainRDMs.mat").unlink()
    with pytest.raises(DataError, match="missing"):
        rdm_benchmark._load_kriegeskorte92(tmp_path)


def _folder(tmp_path, n=6, kind="npy"):
    from PIL import Image

    rng = np.random.default_rng(1)
    (tmp_path / "images").mkdir()
    (tmp_path / "rdms").mkdir()
    for k in range(n):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "images" / f"s{k}.png")
    mats = []
    for subj in ("A", "B"):
        a = rng.random((n, n))
        m = a + a.T
        np.fill_diagonal(m, 0)
        mats.append(m)
        if kind == "npy":
            np.save(tmp_path / "rdms" / f"{subj}.npy", m)
        else:
            scipy.io.savemat(tmp_path / "rdms" / f"{subj}.mat", {"rdm": squareform_vector(m)[None]})
    return mats


@pytest.mark.parametrize("kind", ["npy", "mat"])
def test_generic_folder(tmp_path, kind):
    mats = _folder(tmp_path, kind=kind)
    b = load_rdm_benchmark(tmp_path)
    assert b.images.shape == (6, 16, 16, 3) and b.image_ids == [f"s{k}" for k in range(6)]
    assert list(b.human.rdm_descriptors["subject"]) == ["A", "B"]
    np.testing.assert_allclose(b.human.get_matrices()[1], mats[1])
    assert b.monkey is None
    with pytest.raises(DataError, match="no monkey"):
        b.subject_rdms("monkey")


def test_generic_folder_errors(tmp_path):
    with pytest.raises(DataError, match="neither"):
        load_rdm_benchmark(tmp_path / "nope")
    with pytest.raises(DataError, match="images/"):
        load_rdm_benchmark(tmp_path)
    _folder(tmp_path)
    np.save(tmp_path / "rdms" / "C.npy", np.zeros(7))
    with pytest.raises(DataError, match="15"):
        load_rdm_benchmark(tmp_path)
    bad = np.ones((6, 6))
    with pytest.raises(DataError, match="symmetric"):
        as_rdm_vector(bad, 6, "x")
