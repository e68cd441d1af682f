"""Dataset: stimuli paired with (trial-averaged and single-trial) responses, targets, split, ceilings.

Saved as one netCDF4 file through xarray (h5netcdf engine); see docs/data.md for the layout.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brainprobe.data._images import as_rgb_uint8
from brainprobe.errors import DataError, OutputError

_FORMAT = "brainprobe.Dataset/1"
_TEXT_SPEC = "None, an ROI name, a list of ROI names or a list of int column indices"


def _json_attrs(attrs: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(attrs))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: attrs must be JSON-serialisable ({exc})") from None


def _float_array(values: Any, where: str) -> np.ndarray:
    """``values`` as a float64 array, or a one-line DataError naming ``where`` and the dtype."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        kind = getattr(np.asarray(values, dtype=object), "dtype", type(values))
        raise DataError(f"{where} must be numbers, got {type(values).__name__} ({kind}): {exc}") from None
    return arr


def default_split(
    n: int, test_fraction: float = 0.2, seed: int = 0, groups: Sequence[str] | np.ndarray | None = None
) -> np.ndarray:
    """A seeded random train/test split of n images that keeps every group on one side.

    Parameters
    ----------
    n : int
        Number of images.
    test_fraction : float
        Fraction of the *groups* sent to test: ``round(test_fraction * G)`` of the G groups (at
        least 1 and at most G - 1 when 0 < test_fraction and G >= 2). Without ``groups`` every
        image is its own group, i.e. ``round(test_fraction * n)`` test images.
    seed : int
    groups : sequence of n labels, optional
        One label per image (e.g. the photo a crop was cut from).

    Returns
    -------
    ndarray of object, n
        ``"train"`` / ``"test"`` per image.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"test_fraction must be in [0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    split = np.full(n, "train", dtype=object)
    if groups is None:
        n_test = int(round(test_fraction * n))
        split[rng.permutation(n)[:n_test]] = "test"
        return split
    labels = np.asarray([str(g) for g in groups], dtype=object)
    if labels.shape[0] != n:
        raise DataError(f"default_split: {labels.shape[0]} group labels for {n} images; give one per image")
    codes, uniques = pd.factorize(pd.Series(labels), sort=False)
    n_groups = len(uniques)
    n_test = int(round(test_fraction * n_groups))
    if test_fraction > 0 and n_groups >= 2:
        n_test = min(max(n_test, 1), n_groups - 1)
    test_groups = rng.permutation(n_groups)[:n_test]
    split[np.isin(codes, test_groups)] = "test"
    return split


def check_split_groups(split: np.ndarray, groups: np.ndarray, where: str = "Dataset") -> None:
    """DataError naming a group that has images in both train and test."""
    table = pd.DataFrame({"g": groups, "s": split})
    sides = table.groupby("g", sort=False)["s"].nunique()
    mixed = sides[sides > 1]
    if len(mixed):
        raise DataError(
            f"{where}: group '{mixed.index[0]}' has images in both train and test ({len(mixed)} such groups); "
            "put each group (e.g. all crops of one photo) on one side of the split"
        )


class Dataset:
    """Stimuli paired with brain (or simulated) responses.

    Parameters
    ----------
    stimuli : array, N x H x W x 3
        uint8 RGB images (gray, RGBA, uint16 and float [0, 1] inputs are converted).
    responses : array, N x T, optional
        Trial-averaged responses (any unit, e.g. z-scored betas). Default: NaN-mean of ``trials``.
        Masking rule: a target (column) with any NaN or Inf response is dropped with a warning that
        counts the values, images and targets; a DataError when no target is left.
    targets : pandas.DataFrame, optional
        One row per target with columns ``target`` (str id) and ``roi`` (str); optional
        ``hemisphere``, ``x``, ``y``, ``z`` and any other columns. Default: ids ``t00000...``
        in one ROI ``all``.
    trials : array, N x R x T, optional
        Single-trial responses; NaN marks a missing repeat.
    image_ids : sequence of str, optional
        Unique id per image (default ``img00000...``).
    split : sequence of {"train", "test"}, optional
        Default: a seeded random 20 % of the groups to test, recorded in ``attrs["split_rule"]``.
        A given split must keep every group on one side (DataError naming a group otherwise).
    groups : sequence of str, optional
        One label per image: images sharing a label (e.g. crops of one photo) are one unit for
        splits and bootstraps. Default: each image its own group (its image id).
    noise_ceiling : array, T, optional
        NC as a fraction of variance of ``responses``. Default: NSD's NCSNR ceiling from
        ``trials`` (for their effective repeat count) when there are >= 2 repeats, else NaN.
    attrs : dict, optional
        JSON-serialisable metadata; ``source`` (default "user"), ``subject`` (default "") and
        ``simulated`` (default False) are always present; simulated data also carry ``brain``.
    """

    def __init__(
        self,
        stimuli: np.ndarray,
        responses: np.ndarray | None = None,
        targets: pd.DataFrame | None = None,
        *,
        trials: np.ndarray | None = None,
        image_ids: Sequence[str] | None = None,
        split: Sequence[str] | None = None,
        noise_ceiling: np.ndarray | None = None,
        attrs: dict[str, Any] | None = None,
        groups: Sequence[str] | np.ndarray | None = None,
    ) -> None:
        attrs = dict(attrs or {})
        where = str(attrs.get("path", "Dataset"))
        self.stimuli = as_rgb_uint8(stimuli, where=f"{where}: stimuli")
        n = self.stimuli.shape[0]
        if n == 0:
            raise DataError(f"{where}: no images")

        if trials is not None:
            trials = _float_array(trials, f"{where}: trials")
            if trials.ndim != 3:
                raise DataError(f"{where}: trials must be N x R x T, got shape {trials.shape}")
            if trials.shape[0] != n:
                raise DataError(f"{where}: {n} images but trials for {trials.shape[0]} images")
            trials = np.where(np.isinf(trials), np.nan, trials)
        if responses is None:
            if trials is None:
                raise DataError(f"{where}: give responses (N x T) or trials (N x R x T)")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                responses = np.nanmean(trials, axis=1)
        responses = _float_array(responses, f"{where}: responses")
        if responses.ndim == 1:
            responses = responses[:, None]
        if responses.ndim != 2:
            raise DataError(f"{where}: responses must be N x T, got shape {responses.shape}")
        if responses.shape[0] != n:
            raise DataError(f"{where}: {n} images but responses for {responses.shape[0]} images")
        n_targets = responses.shape[1]
        if trials is not None and trials.shape[2] != n_targets:
            raise DataError(f"{where}: responses have {n_targets} targets but trials {trials.shape[2]}")

        if targets is None:
            targets = pd.DataFrame({"target": [f"t{i:05d}" for i in range(n_targets)], "roi": "all"})
        else:
            targets = pd.DataFrame(targets).reset_index(drop=True).copy()
            if "target" not in targets:
                raise DataError(f"{where}: targets table needs a 'target' column")
            if "roi" not in targets:
                targets["roi"] = "all"
        if len(targets) != n_targets:
            raise DataError(f"{where}: {n_targets} response columns but {len(targets)} rows in the targets table")
        targets["target"] = targets["target"].astype(str)
        targets["roi"] = targets["roi"].astype(str)
        if targets["target"].duplicated().any():
            dup = targets["target"][targets["target"].duplicated()].iloc[0]
            raise DataError(f"{where}: target ids must be unique, '{dup}' repeats")

        if noise_ceiling is not None:
            noise_ceiling = np.asarray(noise_ceiling, dtype=np.float64).reshape(-1)
            if noise_ceiling.shape[0] != n_targets:
                raise DataError(f"{where}: {n_targets} targets but {noise_ceiling.shape[0]} noise ceilings")
            finite = noise_ceiling[np.isfinite(noise_ceiling)]
            if np.any((finite < 0) | (finite > 1)):
                raise DataError(f"{where}: noise ceilings must be fractions of variance in [0, 1]")

        nonfinite = ~np.isfinite(responses)
        bad = nonfinite.any(axis=0)
        if bad.all():
            raise DataError(
                f"{where}: every target has NaN or Inf responses ({int(nonfinite.sum())} of {nonfinite.size} values, "
                f"{int(nonfinite.all(axis=1).sum())} of {n} images without any finite response); nothing left to model"
            )
        if bad.any():
            names = targets["target"][bad].tolist()
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            warnings.warn(
                f"{where}: dropped {int(bad.sum())} of {n_targets} targets with NaN/Inf responses "
                f"({int(nonfinite.sum())} values in {int(nonfinite.any(axis=1).sum())} of {n} images; targets {shown}); "
                "a target is kept only when its response to every image is finite",
                stacklevel=2,
            )
            keep = ~bad
            responses = responses[:, keep]
            targets = targets[keep].reset_index(drop=True)
            if trials is not None:
                trials = trials[:, :, keep]
            if noise_ceiling is not None:
                noise_ceiling = noise_ceiling[keep]

        if image_ids is None:
            image_ids = [f"img{i:05d}" for i in range(n)]
        image_ids = np.asarray([str(i) for i in image_ids], dtype=object)
        if image_ids.shape[0] != n:
            raise DataError(f"{where}: {n} images but {image_ids.shape[0]} image ids")
        if len(set(image_ids.tolist())) != n:
            dup_ids = pd.Series(image_ids).value_counts()
            dup_ids = dup_ids[dup_ids > 1]
            raise DataError(
                f"{where}: image ids must be unique; {len(dup_ids)} id(s) repeat, e.g. '{dup_ids.index[0]}' "
                f"({int(dup_ids.iloc[0])} times)"
            )

        attrs.pop("path", None)
        if groups is None:
            groups = image_ids.copy()
        else:
            groups = np.asarray([str(g) for g in np.asarray(groups, dtype=object).ravel()], dtype=object)
            if groups.shape[0] != n:
                raise DataError(f"{where}: {n} images but {groups.shape[0]} group labels; give one per image")
        n_groups = len(set(groups.tolist()))
        if split is None:
            split = default_split(n, groups=None if n_groups == n else groups)
            attrs.setdefault("split_rule", "random 20% test, seed 0" if n_groups == n else "random 20% of groups test, seed 0")
        split = np.asarray([str(s) for s in split], dtype=object)
        if split.shape[0] != n:
            raise DataError(f"{where}: {n} images but {split.shape[0]} split labels")
        unknown = sorted(set(split.tolist()) - {"train", "test"})
        if unknown:
            raise DataError(f"{where}: split labels must be 'train' or 'test', got {unknown[:3]}")
        if n_groups < n:
            check_split_groups(split, groups, where)

        if noise_ceiling is None:
            if trials is not None and trials.shape[1] >= 2:
                from brainprobe.data.noise_ceiling import noise_ceiling_ncsnr

                noise_ceiling = noise_ceiling_ncsnr(trials)
                attrs.setdefault("noise_ceiling_method", "ncsnr")
            else:
                noise_ceiling = np.full(responses.shape[1], np.nan)
                attrs.setdefault("noise_ceiling_method", "none")

        attrs.setdefault("source", "user")
        attrs.setdefault("subject", "")
        attrs["simulated"] = bool(attrs.get("simulated", False))
        self.responses = responses
        self.trials = trials
        self.targets = targets
        self.image_ids = image_ids
        self.split = split
        self.groups = groups
        self.noise_ceiling = noise_ceiling
        self.attrs = _json_attrs(attrs, where)

    # ----------------------------------------------------------------------------- properties
    @property
    def n_images(self) -> int:
        return int(self.stimuli.shape[0])

    @property
    def n_targets(self) -> int:
        return int(self.responses.shape[1])

    @property
    def n_repeats(self) -> int:
        """Repeats per image in ``trials`` (0 without trials)."""
        return 0 if self.trials is None else int(self.trials.shape[1])

    @property
    def resolution(self) -> tuple[int, int]:
        return int(self.stimuli.shape[1]), int(self.stimuli.shape[2])

    @property
    def rois(self) -> list[str]:
        """ROI names in order of first appearance."""
        return list(dict.fromkeys(self.targets["roi"].tolist()))

    @property
    def simulated(self) -> bool:
        return bool(self.attrs.get("simulated", False))

    @property
    def n_groups(self) -> int:
        """Number of distinct group labels (== n_images when every image is its own group)."""
        return len(set(self.groups.tolist()))

    @property
    def train_index(self) -> np.ndarray:
        return np.flatnonzero(self.split == "train")

    @property
    def test_index(self) -> np.ndarray:
        return np.flatnonzero(self.split == "test")

    def __len__(self) -> int:
        return self.n_images

    # ----------------------------------------------------------------------------- selection
    def roi_index(self, roi: str) -> np.ndarray:
        """Column indices (int array) of the targets in ``roi``; DataError listing ROIs if unknown."""
        if roi not in self.rois:
            raise DataError(f"unknown ROI '{roi}'; this dataset has ROIs {', '.join(self.rois)}")
        return np.flatnonzero(self.targets["roi"].to_numpy() == roi)

    def target_index(self, spec: None | str | Sequence[str] | Sequence[int]) -> np.ndarray:
        """Column indices for a target spec: None (all), an ROI, ROI names, or int indices."""
        if spec is None:
            return np.arange(self.n_targets)
        if isinstance(spec, str):
            return self.roi_index(spec)
        items = list(spec)
        if not items:
            raise DataError(f"empty target spec; give {_TEXT_SPEC}")
        if all(isinstance(s, str) for s in items):
            return np.concatenate([self.roi_index(s) for s in items])
        if all(isinstance(s, (int, np.integer)) for s in items):
            idx = np.asarray(items, dtype=np.int64)
            if idx.min() < -self.n_targets or idx.max() >= self.n_targets:
                raise DataError(f"target index out of range for {self.n_targets} targets")
            return idx % self.n_targets
        raise DataError(f"target spec must be {_TEXT_SPEC}, got {spec!r}")

    def subset(
        self,
        images: Sequence[int] | np.ndarray | slice | None = None,
        targets: None | str | Sequence[str] | Sequence[int] = None,
    ) -> Dataset:
        """A new Dataset with the given images (indices, bool mask or slice) and target spec.

        The noise ceilings of the full dataset are kept (they describe each target's data, and
        recomputing them on few images would only add noise).
        """
        img = np.arange(self.n_images)[images] if images is not None else np.arange(self.n_images)
        if img.dtype == bool:
            img = np.flatnonzero(img)
        if img.size == 0:
            raise DataError("subset selects no images")
        tgt = self.target_index(targets)
        attrs = dict(self.attrs)
        return Dataset(
            self.stimuli[img],
            self.responses[np.ix_(img, tgt)],
            self.targets.iloc[tgt].reset_index(drop=True),
            trials=None if self.trials is None else self.trials[img][:, :, tgt],
            image_ids=self.image_ids[img],
            split=self.split[img],
            noise_ceiling=self.noise_ceiling[tgt],
            attrs=attrs,
            groups=self.groups[img],
        )

    def train(self) -> Dataset:
        """The training images as a Dataset."""
        return self.subset(self.train_index)

    def test(self) -> Dataset:
        """The test images as a Dataset."""
        return self.subset(self.test_index)

    def images(self, index: Sequence[int] | np.ndarray | slice | None = None, device: Any = None) -> Any:
        """Stimuli as a float32 torch tensor N x 3 x H x W in [0, 1] (all or ``index``)."""
        from brainprobe._images import to_float_tensor

        stim = self.stimuli if index is None else self.stimuli[index]
        return to_float_tensor(stim, device=device)

    # ----------------------------------------------------------------------------- I/O
    def to_xarray(self) -> Any:
        """The dataset as an ``xarray.Dataset`` (dims image, y, x, channel, target, repeat)."""
        import xarray as xr

        data_vars: dict[str, Any] = {
            "stimuli": (("image", "y", "x", "channel"), self.stimuli),
            "responses": (("image", "target"), self.responses),
            "split": (("image",), self.split.astype(str)),
            "groups": (("image",), self.groups.astype(str)),
            "noise_ceiling": (("target",), self.noise_ceiling),
        }
        if self.trials is not None:
            data_vars["trials"] = (("image", "repeat", "target"), self.trials)
        columns = []
        for col in self.targets.columns:
            if col == "target":
                continue
            values = self.targets[col].to_numpy()
            if values.dtype == object:
                values = values.astype(str)
            data_vars[f"target_{col}"] = (("target",), values)
            columns.append(col)
        ds = xr.Dataset(
            data_vars,
            coords={
                "image": self.image_ids.astype(str),
                "target": self.targets["target"].to_numpy().astype(str),
                "channel": ["R", "G", "B"],
            },
        )
        ds.attrs.update(
            {
                "format": _FORMAT,
                "brainprobe_attrs": json.dumps(self.attrs, sort_keys=True),
                "target_columns": json.dumps(columns),
                "source": str(self.attrs.get("source", "")),
                "subject": str(self.attrs.get("subject", "")),
                "simulated": int(self.simulated),
            }
        )
        if self.simulated:
            ds.attrs["brain"] = str(self.attrs.get("brain", ""))
            ds.attrs["note"] = "SIMULATED responses, not brain data"
        return ds

    def save(self, path: str | Path) -> Path:
        """Write the dataset to one netCDF4 file (h5netcdf engine), atomically; returns the path."""
        from brainprobe._io import write_bytes_atomic
        from brainprobe._version import __version__

        path = Path(path)
        if path.parent and not path.parent.exists():
            raise DataError(f"{path}: folder {path.parent} does not exist")
        ds = self.to_xarray()
        ds.attrs["brainprobe_version"] = __version__
        encoding = {"stimuli": {"zlib": True, "complevel": 4}}
        # serialised in memory (HDF5 never writes to disk, where a full disk crashes it), then written
        # through a temporary beside the target and a rename: a failed write leaves any old file intact
        data = ds.to_netcdf(engine="h5netcdf", encoding=encoding)
        try:
            write_bytes_atomic(path, data)
        except OSError as err:  # disk full, file too large, read-only folder: one line naming the file
            raise OutputError.from_os_error(err, path) from None
        return path

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        """Read a file written by :meth:`save` (all arrays are loaded into memory)."""
        import xarray as xr

        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: dataset file not found")
        try:
            with xr.open_dataset(path, engine="h5netcdf") as ds:
                ds = ds.load()
        except Exception as exc:  # h5py/xarray raise many types for corrupt files
            raise DataError(f"{path}: not a readable netCDF dataset ({type(exc).__name__}: {exc})") from None
        fmt = str(ds.attrs.get("format", ""))
        if fmt.startswith("brainprobe.Dataset/") and fmt != _FORMAT:
            raise DataError(
                f"{path}: dataset format '{fmt}' (brainprobe {ds.attrs.get('brainprobe_version', '?')}) is not "
                f"'{_FORMAT}', the one this brainprobe reads; upgrade brainprobe (pip install -U brainprobe)"
            )
        if fmt != _FORMAT:
            raise DataError(f"{path}: not a brainprobe dataset (missing format attribute '{_FORMAT}')")
        columns = json.loads(ds.attrs["target_columns"])
        targets = pd.DataFrame({"target": ds["target"].values.astype(str).astype(object)})
        for col in columns:
            values = ds[f"target_{col}"].values
            targets[col] = values.astype(object) if values.dtype.kind in "USO" else values
        attrs = json.loads(ds.attrs["brainprobe_attrs"])
        attrs["path"] = str(path)
        return cls(
            ds["stimuli"].values,
            ds["responses"].values,
            targets,
            trials=ds["trials"].values if "trials" in ds else None,
            image_ids=ds["image"].values.astype(str),
            split=ds["split"].values.astype(str),
            noise_ceiling=ds["noise_ceiling"].values,
            attrs=attrs,
            groups=ds["groups"].values.astype(str) if "groups" in ds else None,  # files before groups: one per image
        )

    # ----------------------------------------------------------------------------- display
    def summary(self) -> str:
        """Multi-line human-readable summary (SIMULATED banner for simulated data)."""
        lines = []
        if self.simulated:
            lines.append(f"*** SIMULATED data: responses of brain model '{self.attrs.get('brain', '?')}', not fMRI ***")
        h, w = self.resolution
        lines.append(
            f"source: {self.attrs.get('source', '')}  subject: {self.attrs.get('subject', '') or '-'}  "
            f"images: {self.n_images} ({h}x{w} px; {len(self.train_index)} train / {len(self.test_index)} test)  "
            f"targets: {self.n_targets}  repeats: {self.n_repeats or '-'}"
        )
        if self.n_groups < self.n_images:
            n_test_groups = len(set(self.groups[self.test_index].tolist()))
            lines.append(
                f"groups: {self.n_groups} (images sharing a group, e.g. crops of one photo, stay on one side "
                f"of the split: {self.n_groups - n_test_groups} train / {n_test_groups} test)"
            )
        nc = self.noise_ceiling
        lines.append(f"{'roi':<16}{'targets':>8}{'NC median':>11}{'NC 5%':>8}{'NC 95%':>8}")
        for roi in self.rois:
            idx = self.roi_index(roi)
            v = nc[idx][np.isfinite(nc[idx])]
            if v.size:
                q = np.percentile(v, [50, 5, 95])
                stats = f"{q[0]:>11.3f}{q[1]:>8.3f}{q[2]:>8.3f}"
            else:
                stats = f"{'n/a':>11}{'':>8}{'':>8}"
            lines.append(f"{roi:<16}{len(idx):>8}{stats}")
        method = self.attrs.get("noise_ceiling_method")
        if method:
            lines.append(f"noise ceiling: {method} (fraction of variance of the trial-averaged responses)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        tag = f"SIMULATED brain={self.attrs.get('brain', '?')}, " if self.simulated else ""
        return (
            f"Dataset({tag}source={self.attrs.get('source')!r}, subject={self.attrs.get('subject')!r}, "
            f"images={self.n_images}, targets={self.n_targets}, repeats={self.n_repeats}, rois={self.rois})"
        )
