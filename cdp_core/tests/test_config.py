import pytest

from cdp_core.config import ConfigError, config_from_dict, load_config


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  stpes: 10\n")
    with pytest.raises(ConfigError, match=r"stpes.*section 'train'"):
        load_config(p)


def test_unknown_section_and_bad_type():
    with pytest.raises(ConfigError, match="trian"):
        config_from_dict({"trian": {}})
    with pytest.raises(ConfigError, match="train.steps must be an integer"):
        config_from_dict({"train": {"steps": "many"}})


def test_overrides_and_validation():
    cfg = load_config(None, ["contraction.gamma=0.5", "model.denoiser=mlp"])
    assert cfg.contraction.gamma == 0.5 and cfg.model.denoiser == "mlp"
    with pytest.raises(ConfigError, match="divisible"):
        config_from_dict({"data": {"horizon": 10}, "model": {"unet_dims": [8, 16, 32]}})
    with pytest.raises(ConfigError, match="contraction.form"):
        config_from_dict({"contraction": {"form": "spectral"}})
