"""RDM benchmarks: stimuli plus brain representational dissimilarity matrices (RDMs) per subject.

``load_rdm_benchmark("kriegeskorte92")`` reads the 92-image set of Kriegeskorte et al. (2008,
Neuron) shipped under ``brainprobe/assets/rdm/kriegeskorte92/`` (MIT, redistributed by the
rsatoolbox project; see the README there): the images, their category flags, the human IT RDMs
of 4 subjects x 2 sessions and the monkey IT RDM. ``load_rdm_benchmark(folder)`` reads a generic
layout: ``images/`` (one image file per stimulus, sorted by name) and ``rdms/`` (one ``.npy`` or
``.mat`` per subject, an N x N matrix or a MATLAB ``squareform`` vector of length N(N-1)/2).

RDMs are returned as ``rsatoolbox.rdm.RDMs`` with ``rdm_descriptors`` ``subject``, ``session``,
``species`` and ``roi``, and ``pattern_descriptors`` ``image`` (the stimulus ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brainprobe._paths import ASSETS
from brainprobe.errors import DataError

KRIEGESKORTE92 = ASSETS / "rdm" / "kriegeskorte92"
"""Folder of the shipped 92-image set (two .mat files and a README)."""

_FILES_92 = {
    "Kriegeskorte_Neuron2008_supplementalData.mat": "06f21214399a5d43dc264eed19a7f4b8daf11c8622a59eec3e106064ce5e3504",
    "92_brainRDMs.mat": "1743f90a15e895798a94318649e80e1123a7e5943a1703fa1dd7c31ea5780b7c",
}

CITATION_92 = (
    "Kriegeskorte N, Mur M, Ruff DA, Kiani R, Bodurka J, Esteky H, Tanaka K, Bandettini PA (2008). "
    "Matching categorical object representations in inferior temporal cortex of man and monkey. "
    "Neuron 60(6):1126-1141."
)

NAMED = ("kriegeskorte92",)


@dataclass
class RDMBenchmark:
    """Stimuli with brain RDMs.

    Attributes
    ----------
    name : str
    images : np.ndarray
        uint8, N x H x W x 3 (the 92-image set: 92 x 175 x 175 x 3).
    image_ids : list of str
        N stimulus ids, in RDM row order.
    categories : pandas.DataFrame
        One row per image (index ``image``): boolean category flags (for kriegeskorte92
        ``animate, inanim, human, nonhumani, body, face, natObj, artiObj, rand24, rand48,
        other48, monkeyape`` from ``categoryVectors``) and the string ``category`` label.
        Empty of columns when the layout gives none.
    human : rsatoolbox.rdm.RDMs or None
        Human RDMs, one per subject and session (descriptors ``subject``, ``session``,
        ``species``, ``roi``); dissimilarity 1 - Pearson r.
    monkey : rsatoolbox.rdm.RDMs or None
        Monkey RDMs (kriegeskorte92: one, IT, 674 neurons).
    extra : dict of str -> rsatoolbox.rdm.RDMs
        Other RDMs in the files (kriegeskorte92: ``human_fig1``, the paper's Figure-1 human IT
        RDM, 316 voxels, pooled over subjects).
    attrs : dict
        ``source``, ``citation``, ``licence``, ``simulated`` (False), file sha256 sums.
    """

    name: str
    images: np.ndarray
    image_ids: list[str]
    categories: pd.DataFrame
    human: Any
    monkey: Any
    extra: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return int(self.images.shape[0])

    def subject_rdms(self, species: str = "human") -> Any:
        """One RDM per subject: the mean over that subject's sessions (rsatoolbox ``RDMs``).

        Descriptors ``subject``, ``species``, ``roi`` and ``n_sessions``.
        """
        from rsatoolbox.rdm import RDMs

        rdms = self.human if species == "human" else self.monkey
        if rdms is None:
            raise DataError(f"{self.name}: no {species} RDMs in this benchmark; use the species it has")
        subjects = list(dict.fromkeys(rdms.rdm_descriptors["subject"]))
        vecs, n_sess = [], []
        for s in subjects:
            sel = np.asarray(rdms.rdm_descriptors["subject"]) == s
            vecs.append(rdms.dissimilarities[sel].mean(axis=0))
            n_sess.append(int(sel.sum()))
        return RDMs(
            np.stack(vecs),
            dissimilarity_measure=rdms.dissimilarity_measure,
            rdm_descriptors={"subject": subjects, "species": [species] * len(subjects),
                             "roi": list(rdms.rdm_descriptors["roi"][: len(subjects)]), "n_sessions": n_sess},
            pattern_descriptors={"image": list(self.image_ids)},
        )

    def __str__(self) -> str:
        h = 0 if self.human is None else self.human.n_rdm
        m = 0 if self.monkey is None else self.monkey.n_rdm
        return f"RDMBenchmark {self.name}: {self.n_images} images, {h} human RDMs, {m} monkey RDMs (REAL data)"


# -------------------------------------------------------------------------------------- helpers


def squareform_vector(matrix: np.ndarray) -> np.ndarray:
    """Upper triangle of a symmetric N x N matrix as MATLAB/scipy ``squareform`` orders it.

    Row by row: (0,1), (0,2), ..., (0,N-1), (1,2), ... (MATLAB's column-wise lower triangle is
    the same sequence). Returns float64, length N(N-1)/2.
    """
    m = np.asarray(matrix, dtype=np.float64)
    i, j = np.triu_indices(m.shape[0], k=1)
    return m[i, j]


def as_rdm_vector(values: np.ndarray, n: int | None, where: str) -> np.ndarray:
    """An RDM given as an N x N matrix or a squareform vector -> the squareform vector (float64).

    Raises DataError when the matrix is not square and symmetric with a zero diagonal, or the
    vector's length is not N(N-1)/2 for the expected N.
    """
    v = np.asarray(values, dtype=np.float64).squeeze()
    if v.ndim == 2:
        if v.shape[0] != v.shape[1]:
            raise DataError(f"{where}: RDM matrix is {v.shape[0]} x {v.shape[1]}, not square; give an N x N matrix")
        if not np.allclose(v, v.T, equal_nan=True, atol=1e-6) or not np.allclose(np.diag(v), 0, atol=1e-6):
            raise DataError(f"{where}: RDM matrix is not symmetric with a zero diagonal; check the file")
        if n is not None and v.shape[0] != n:
            raise DataError(f"{where}: RDM is {v.shape[0]} x {v.shape[0]} but there are {n} images; match them")
        return squareform_vector(v)
    if v.ndim == 1:
        m = int(round((1 + np.sqrt(1 + 8 * v.size)) / 2))
        if m * (m - 1) // 2 != v.size or (n is not None and m != n):
            want = "N(N-1)/2" if n is None else str(n * (n - 1) // 2)
            raise DataError(f"{where}: RDM vector has {v.size} entries, expected {want}; give a squareform vector")
        return v
    raise DataError(f"{where}: RDM has shape {v.shape}; give an N x N matrix or a squareform vector")


def _loadmat(path: Path) -> dict[str, Any]:
    import scipy.io

    try:
        return scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except (ValueError, OSError, NotImplementedError) as exc:
        raise DataError(f"{path}: unreadable .mat file ({exc}); re-save it as MATLAB v5-v7.2") from None


def _verify(folder: Path) -> dict[str, str]:
    from brainprobe._hashing import sha256_file

    sums = {}
    for name, digest in _FILES_92.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path} is missing; reinstall brainprobe (the 92-image set ships with the package)")
        got = sha256_file(path)
        if got != digest:
            raise DataError(f"{path}: sha256 {got[:12]}... does not match {digest[:12]}...; the file is corrupt, "
                            "reinstall brainprobe")
        sums[name] = got
    return sums


def _rdms(vectors: np.ndarray, descriptors: dict[str, list[Any]], image_ids: list[str]) -> Any:
    from rsatoolbox.rdm import RDMs

    return RDMs(np.asarray(vectors, dtype=np.float64), dissimilarity_measure="1 - Pearson r",
                rdm_descriptors=descriptors, pattern_descriptors={"image": list(image_ids)})


# ------------------------------------------------------------------------------ kriegeskorte92


def _load_kriegeskorte92(folder: Path) -> RDMBenchmark:
    sums = _verify(folder)
    supp = _loadmat(folder / "Kriegeskorte_Neuron2008_supplementalData.mat")
    brain = _loadmat(folder / "92_brainRDMs.mat")
    stim = np.atleast_1d(supp["stimuli_92objs"])
    images = np.stack([np.asarray(s.image, dtype=np.uint8) for s in stim])
    n = images.shape[0]
    ids = [f"img{k + 1:02d}" for k in range(n)]
    vectors = np.asarray(supp["categoryVectors"]).astype(bool)
    labels = [str(x) for x in np.atleast_1d(supp["categoryLabels"])]
    categories = pd.DataFrame(vectors, columns=labels, index=pd.Index(ids, name="image"))
    categories["category"] = [str(s.category) for s in stim]
    for flag in ("human", "face", "animal", "natural"):
        categories[f"stim_{flag}"] = [bool(getattr(s, flag)) for s in stim]

    cells = np.asarray(brain["RDMs"])  # subjects x sessions
    vecs, subjects, sessions = [], [], []
    for i in range(cells.shape[0]):
        for j in range(cells.shape[1]):
            cell = cells[i, j]
            parts = [p.strip() for p in str(cell.name).split("|")]  # 'hIT | BE | Session: 1'
            subjects.append(parts[1])
            sessions.append(int(parts[2].split(":")[1]))
            vecs.append(as_rdm_vector(cell.RDM, n, f"{folder / '92_brainRDMs.mat'} RDMs({i + 1},{j + 1})"))
    human = _rdms(np.stack(vecs), {"subject": subjects, "session": sessions, "species": ["human"] * len(vecs),
                                   "roi": ["IT"] * len(vecs)}, ids)
    fig1 = {str(r.name): r.RDM for r in np.atleast_1d(supp["RDMs_mIT_hIT_fig1"])}
    where = folder / "Kriegeskorte_Neuron2008_supplementalData.mat"
    monkey_key = next(k for k in fig1 if k.startswith("mIT"))
    human_key = next(k for k in fig1 if k.startswith("hIT"))
    monkey = _rdms(as_rdm_vector(fig1[monkey_key], n, f"{where} {monkey_key}")[None],
                   {"subject": ["monkey"], "session": [0], "species": ["monkey"], "roi": ["IT"]}, ids)
    human_fig1 = _rdms(as_rdm_vector(fig1[human_key], n, f"{where} {human_key}")[None],
                       {"subject": ["pooled"], "session": [0], "species": ["human"], "roi": ["IT"]}, ids)
    return RDMBenchmark(
        name="kriegeskorte92",
        images=images,
        image_ids=ids,
        categories=categories,
        human=human,
        monkey=monkey,
        extra={"human_fig1": human_fig1},
        attrs={"source": "kriegeskorte92", "citation": CITATION_92, "simulated": False,
               "licence": "MIT (redistributed by the rsatoolbox project, demos/92imageData)",
               "files_sha256": sums, "monkey_rdm": monkey_key, "human_fig1_rdm": human_key},
    )


# ---------------------------------------------------------------------------------------- generic


def _read_rdm_file(path: Path, n: int, key: str | None) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        try:
            values = np.load(path)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path}: unreadable .npy ({exc})") from None
    else:
        data = {k: v for k, v in _loadmat(path).items() if not k.startswith("__")}
        if key is None and len(data) != 1:
            raise DataError(f"{path}: holds {len(data)} variables ({', '.join(sorted(data))}); pass rdm_key=NAME")
        name = key if key is not None else next(iter(data))
        if name not in data:
            raise DataError(f"{path}: no variable {name!r}; it has {', '.join(sorted(data))}")
        values = data[name]
    return as_rdm_vector(values, n, str(path))


def _load_folder(root: Path, *, species: str, roi: str, rdm_key: str | None, resolution: int | None) -> RDMBenchmark:
    from brainprobe.data.generic import _read_images

    images_dir, rdm_dir = root / "images", root / "rdms"
    for p in (images_dir, rdm_dir):
        if not p.is_dir():
            raise DataError(f"{root}: no '{p.name}/' folder; an RDM benchmark folder needs images/ and rdms/")
    images, ids = _read_images(images_dir, None, resolution)
    files = sorted(p for p in rdm_dir.iterdir() if p.suffix.lower() in (".npy", ".mat"))
    if not files:
        raise DataError(f"{rdm_dir}: no .npy or .mat RDM files; put one per subject there")
    vecs = np.stack([_read_rdm_file(p, len(ids), rdm_key) for p in files])
    subjects = [p.stem for p in files]
    rdms = _rdms(vecs, {"subject": subjects, "session": [0] * len(files), "species": [species] * len(files),
                        "roi": [roi] * len(files)}, ids)
    cat_file = root / "categories.csv"
    if cat_file.is_file():
        categories = pd.read_csv(cat_file)
        if len(categories) != len(ids):
            raise DataError(f"{cat_file}: {len(categories)} rows for {len(ids)} images; give one row per image")
        categories.index = pd.Index(ids, name="image")
    else:
        categories = pd.DataFrame(index=pd.Index(ids, name="image"))
    return RDMBenchmark(
        name=root.name,
        images=images,
        image_ids=ids,
        categories=categories,
        human=rdms if species == "human" else None,
        monkey=rdms if species == "monkey" else None,
        attrs={"source": str(root), "simulated": False},
    )


def load_rdm_benchmark(
    path_or_name: str | Path,
    *,
    species: str = "human",
    roi: str = "IT",
    rdm_key: str | None = None,
    resolution: int | None = None,
) -> RDMBenchmark:
    """Load an RDM benchmark: a shipped one by name, or a folder.

    Parameters
    ----------
    path_or_name
        ``"kriegeskorte92"`` (shipped; offline), or a folder with ``images/`` (image files, in
        name order = RDM row order), ``rdms/`` (one ``.npy`` or ``.mat`` per subject, file stem =
        subject id; an N x N matrix or a squareform vector of length N(N-1)/2) and optionally
        ``categories.csv`` (one row per image).
    species, roi
        Descriptors of a folder's RDMs (ignored for named benchmarks).
    rdm_key
        Variable name inside ``.mat`` RDM files holding several variables.
    resolution
        Resize a folder's images to this square size (None: keep; all must then match).

    Returns
    -------
    RDMBenchmark

    Raises
    ------
    DataError
        Unknown name, missing folder or file, a shipped file failing its sha256, or RDMs whose
        size does not match the number of images.
    """
    if isinstance(path_or_name, str) and path_or_name in NAMED:
        return _load_kriegeskorte92(KRIEGESKORTE92)
    root = Path(path_or_name)
    if not root.is_dir():
        raise DataError(f"RDM benchmark {str(path_or_name)!r} is neither a shipped name ({', '.join(NAMED)}) "
                        "nor a folder; give one of those")
    return _load_folder(root, species=species, roi=roi, rdm_key=rdm_key, resolution=resolution)
