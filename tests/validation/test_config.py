"""Validation config: the shipped default loads; bad configs are one-line ConfigErrors."""

from __future__ import annotations

import pytest

from brainprobe.errors import ConfigError
from brainprobe.validation.config import ValidationConfig, check_validation_config, load_validation_config
from brainprobe.validation.run import quick_config


def test_shipped_default_has_matched_and_mismatched_brains_of_four_networks():
    cfg = load_validation_config()
    forms = {b.form for b in cfg.brains}
    assert "matched" in forms and forms - {"matched"}
    assert {"mobilenet_v2", "efficientnet_lite0", "vgg19"} <= {b.backbone for b in cfg.brains}
    assert any("robust" in b.backbone for b in cfg.brains)
    assert all(b.backbone in cfg.candidates for b in cfg.brains)
    assert cfg.readouts[0] == "ridge" and "spatial_ridge" in cfg.readouts  # the default readout is compared
    from pathlib import Path

    full = load_validation_config(Path(__file__).parents[2] / "configs" / "validate_full.yaml")
    assert set(full.readouts) == {"ridge", "spatial_ridge", "factorized"}
    assert full.brains == cfg.brains and full.probes == cfg.probes
    q = quick_config(cfg)
    assert len(q.brains) == 2 and all(len(b.seeds) == 1 for b in q.brains) and str(q.output.dir).endswith("-quick")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"candidates": ["efficientnet_lite0", "vgg19"]}, "not among the candidates"),
        ({"readouts": ["nonsense"]}, "unknown readout 'nonsense'"),
        ({"candidates": ["mobilenet_v2", "no_such_net"]}, "key 'candidates'"),
        ({"probes": {"n_images": 40}}, "probes.n_images"),
    ],
)
def test_bad_config_is_a_one_line_config_error(change, match):
    data = {"brains": [{"backbone": "mobilenet_v2"}], "candidates": ["mobilenet_v2", "vgg19"], **change}
    with pytest.raises(ConfigError, match=match) as err:
        check_validation_config(ValidationConfig.model_validate(data), "test.yaml")
    assert "\n" not in str(err.value)


def test_unknown_key_is_refused(tmp_path):
    p = tmp_path / "v.yaml"
    p.write_text("brains: [{backbone: mobilenet_v2}]\ncandidates: [mobilenet_v2, vgg19]\nbrians: 1\n")
    with pytest.raises(ConfigError):
        load_validation_config(p)
