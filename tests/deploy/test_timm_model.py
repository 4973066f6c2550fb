import timm
import torch

import vitsearch.space  # noqa: F401  registers the timm entrypoint
from vitsearch.space import build_model, get_preset
from vitsearch.space.weights import save_weights


def test_create_model_from_preset_path_and_dict_builds_the_same_model(tmp_path):
    arch = get_preset("test_metaformer")
    path = tmp_path / "arch.yaml"
    arch.save(path)
    torch.manual_seed(0)
    reference = build_model(arch, img_size=32, num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    for spec in ("test_metaformer", str(path), arch.to_dict()):
        torch.manual_seed(0)
        model = timm.create_model("vitsearch", arch=spec, num_classes=10, img_size=32)
        assert model.arch == arch
        torch.testing.assert_close(model(x), reference(x))
        assert model.pretrained_cfg["input_size"] == (3, 32, 32)
        assert model.pretrained_cfg["num_classes"] == 10
        assert len(model.pretrained_cfg["mean"]) == 3 and model.pretrained_cfg["fixed_input_size"]


def test_pretrained_cfg_follows_channels_and_is_what_timm_resolves():
    from timm.data import resolve_data_config

    model = timm.create_model("vitsearch", arch="test_vit", in_chans=1, img_size=32, mean=(0.1307,), std=(0.3081,))
    config = resolve_data_config({}, model=model)
    assert config["input_size"] == (1, 32, 32)
    assert config["mean"] == (0.1307,) and config["std"] == (0.3081,)


def test_pretrained_loads_a_weights_file_and_refuses_unsupported_options(tmp_path):
    torch.manual_seed(1)
    trained = build_model("test_vit", img_size=32, num_classes=4)
    save_weights(trained, tmp_path / "w.safetensors", "train", mean=[0.5] * 3, std=[0.25] * 3)
    model = timm.create_model(
        "vitsearch", arch="test_vit", pretrained=True, pretrained_cfg_overlay={"file": str(tmp_path / "w.safetensors")}
    )
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model(x), trained.eval()(x))
    assert model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5) and model.num_classes == 4
    for bad in ({"drop_path_rate": 0.1}, {"unknown": 1}, {"pretrained": True}):
        try:
            timm.create_model("vitsearch", arch="test_vit", **bad)
        except (TypeError, ValueError) as err:
            assert str(err).startswith("vitsearch")
        else:
            raise AssertionError(f"{bad} was accepted")
