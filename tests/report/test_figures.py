"""Every figure: a title, axis labels with units, a legend where colours carry meaning, no overlapping text."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from brainprobe.errors import DataError
from brainprobe.report._style import model_training, save_figure
from brainprobe.report.figures import FIGURES, pick, transfer_figure
from brainprobe.report.gallery import probe_gallery

ALL = [(group, stem, fn) for group, figs in FIGURES.items() for stem, fn in figs]
UNITS = ("ε", "SD", "r", "ratio", "fraction", "alignment", "units", "change", "model", "ROI", "score", "target", "probe")


def _texts(fig):
    """The texts matplotlib draws: titles, axis labels, tick labels inside the view, legends, annotations."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis._update_ticks():  # only the ticks inside the view limits are drawn
                texts += [tick.label1, tick.label2]
        legend = ax.get_legend()
        if legend is not None:
            texts += [legend.get_title(), *legend.get_texts()]
    out = []
    for t in texts:
        if t.get_visible() and t.get_text().strip():
            bb = t.get_window_extent(renderer)
            if bb.width > 0 and bb.height > 0:
                out.append((t, bb))
    return out


def _overlaps(fig, tolerance: float = 2.0):
    """Pairs of visible texts whose boxes intersect by more than ``tolerance`` pixels both ways.

    Two texts rotated by the same angle (e.g. slanted tick labels) have axis-aligned boxes that
    always intersect; they collide only when their anchors are closer, across the slant, than
    the text height.
    """
    pairs = []
    for (ta, a), (tb, b) in itertools.combinations(_texts(fig), 2):
        w = min(a.x1, b.x1) - max(a.x0, b.x0)
        h = min(a.y1, b.y1) - max(a.y0, b.y0)
        if not (w > tolerance and h > tolerance):
            continue
        angle = ta.get_rotation()
        if angle and angle == tb.get_rotation():
            height = ta.get_fontsize() * fig.dpi / 72
            gap = abs(a.x1 - b.x1) * np.sin(np.deg2rad(angle)) + abs(a.y1 - b.y1) * np.cos(np.deg2rad(angle))
            if gap >= 0.9 * height:
                continue
        pairs.append((ta.get_text(), tb.get_text()))
    return pairs


def _check_labels(fig, *, skip_image_axes: bool = False):
    title = fig._suptitle.get_text() if fig._suptitle is not None else ""
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert title or all(ax.get_title() for ax in axes), "figure has no title"
    for ax in axes:
        if skip_image_axes and ax.images:
            continue
        xl, yl = ax.get_xlabel(), ax.get_ylabel()
        assert xl and yl, f"axes {ax.get_title()!r} lacks an axis label ({xl!r}, {yl!r})"
        assert any(u in xl for u in UNITS) and any(u in yl for u in UNITS), (xl, yl)


@pytest.mark.parametrize("group,stem,fn", ALL, ids=[s for _, s, _ in ALL])
def test_figure_has_title_labels_legend_and_no_overlap(analyses, tmp_path, group, stem, fn):
    fig = fn(analyses[group])
    _check_labels(fig)
    multi_model = stem in ("predictivity", "sensitivity", "minimal_eps", "linearity", "l2_linf")
    if multi_model:
        assert any(ax.get_legend() is not None for ax in fig.axes), "colours carry meaning but no legend"
    assert _overlaps(fig) == []
    png, svg = save_figure(fig, tmp_path, stem)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in svg.read_bytes()[:500]


def test_gallery_has_titles_labels_and_no_overlap(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)
    delta = rng.normal(0, 2 / 255, (3, 3, 48, 48)).astype(np.float32)
    fig = probe_gallery(images, delta, rng.normal(0, 1, (3, 4)), ["V1", "V4", "IT", "FFA"], model="mobilenet_v2",
                        eps=2 / 255, norm="linf")
    _check_labels(fig, skip_image_axes=True)
    assert "2/255" in fig._suptitle.get_text()
    assert _overlaps(fig) == []
    # 3 rows x (clean, perturbation, perturbed, bars)
    assert len(fig.axes) == 12 and sum(bool(ax.images) for ax in fig.axes) == 9


def test_robust_models_get_blue_and_standard_orange(analyses):
    fig = FIGURES["sensitivity"][0][1](analyses["sensitivity"])
    lines = {l.get_label(): l.get_color() for l in fig.axes[0].get_lines()}
    robust = model_training(analyses["sensitivity"], list(lines))
    for name, colour in lines.items():
        r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
        assert (b > r) == robust[name], (name, colour)


def test_transfer_selects_a_probed_budget_of_the_norm(analyses):
    fig = transfer_figure(analyses["transfer"], norm="linf")
    assert "/255" in fig.axes[0].get_title()
    # the union eps grid holds NaN for l2 budgets under linf: the selected one must be finite
    values = [t.get_text() for t in fig.axes[0].texts]
    assert values and all(v != "nan" for v in values)


def test_missing_variables_are_a_one_line_data_error(analyses):
    with pytest.raises(DataError, match="none of the variables") as err:
        pick(analyses["sensitivity"].drop_vars(["curve"]).drop_vars("curve_ci_low"), ["curve", "change"], "sensitivity")
    assert "\n" not in str(err.value)


def test_overlap_check_catches_colliding_text():
    from brainprobe.report._style import mpl

    plt = mpl()
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.set_xticks(np.arange(6), [f"a long tick label {i}" for i in range(6)])  # horizontal, far too wide
    assert _overlaps(fig)
    plt.close(fig)


def test_gallery_with_noise_shows_probe_and_noise_amplified_and_not(tmp_path):
    from brainprobe.report.gallery import white_noise_like

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    delta = rng.normal(0, 4 / 255, (2, 3, 48, 48)).astype(np.float32)
    noise = white_noise_like(delta, "l2", seed=0)
    np.testing.assert_allclose(np.linalg.norm(noise.reshape(2, -1), axis=1), np.linalg.norm(delta.reshape(2, -1), axis=1),
                               rtol=1e-5)
    fig = probe_gallery(images, delta, rng.normal(0, 1, (2, 3)), ["V1", "V4", "IT"], model="m", eps=1.0, norm="l2",
                        noise=noise, noise_change=rng.normal(0, 0.1, (2, 3)))
    _check_labels(fig, skip_image_axes=True)
    assert _overlaps(fig) == []
    # 2 rows x (clean, probe x gain, image + probe, noise x gain, image + noise, bars)
    assert len(fig.axes) == 12 and sum(bool(ax.images) for ax in fig.axes) == 10
    titles = [ax.get_title() for ax in fig.axes[:6]]
    assert titles[:5] == ["image", "probe (amplified)", "image + probe", "noise (amplified)", "image + noise"]


def test_white_noise_matches_the_probe_norm():
    from brainprobe.report.gallery import white_noise_like

    rng = np.random.default_rng(2)
    delta = np.clip(rng.normal(0, 3 / 255, (3, 3, 16, 16)), -2 / 255, 2 / 255).astype(np.float32)
    z = white_noise_like(delta, "linf", seed=0)
    np.testing.assert_allclose(np.abs(z).reshape(3, -1).max(1), np.abs(delta).reshape(3, -1).max(1), rtol=1e-6)
    assert set(np.unique(np.sign(z))) == {-1.0, 1.0}
    assert not np.allclose(white_noise_like(delta, "l2", seed=0), white_noise_like(delta, "l2", seed=1))


def test_convergence_notes_warn_only_for_unconverged_models(analyses):
    from brainprobe.report.build import convergence_notes

    notes = convergence_notes("brainA", analyses["convergence"])
    bad = [m for m in analyses["convergence"]["model"].values
           if (analyses["convergence"]["fraction_median"].sel(model=m) < 0.95).any()]
    assert bad and len({n.split("'s")[0] for n in notes}) == len(bad)
    assert all("did not converge" in n and "brainA" in n for n in notes)
    assert convergence_notes("brainA", None) == []
