"""Command line: ``python -m fer {train,evaluate,predict,video,batch,serve} ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import warnings
from dataclasses import fields
from typing import TYPE_CHECKING

from fer import cli_predict, cli_scale, export
from fer.cli_predict import add_tta_option
from fer.labels import SPLITS
from fer.profiles import DEFAULT_PROFILE, PROFILES

if TYPE_CHECKING:
    from fer.training import TrainConfig


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """One flag per :class:`fer.training.TrainConfig` field: its default, type, help and allowed values."""
    from fer.training import CHOICES, TrainConfig

    types = {"int": int, "float": float, "str": str}
    for f in fields(TrainConfig):
        kind = getattr(f.type, "__name__", f.type)  # "int" whether or not annotations are postponed
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        kw = {"dest": f.name, "help": f.metadata.get("help") or None}
        if kind == "bool":
            kw["action"] = "store_false" if f.default else "store_true"
            flag = "--no-" + flag[2:] if f.default else flag
        else:
            kw.update(type=types[kind], default=f.default, choices=CHOICES.get(f.name),
                      metavar=f.metadata.get("metavar"))
        p.add_argument(flag, **kw)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`fer.training.TrainConfig` that :func:`add_config_arguments`' flags describe."""
    from fer.training import TrainConfig

    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on a dataset (resumable)")
    p.add_argument("--data", required=True, help="fer2013.csv, a Kaggle train/test folder or a class-folder tree")
    p.add_argument("--out", required=True, help="output model path, e.g. models/mine.keras")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run that writes --out")
    add_config_arguments(p)
    p.add_argument("--init-model", help="fine-tune: start from this model's weights (same architecture)")
    p.add_argument("--skip-unknown", action="store_true", help="ignore unknown class folders / labels")
    p.set_defaults(handler=cmd_train, precheck=check_train)


def _add_average(sub) -> None:
    p = sub.add_parser("average", help="average the weights of a run's last epochs (SWA) into one model")
    p.add_argument("--run", required=True, help="the --out of a run trained with --keep-checkpoints")
    p.add_argument("--from-epoch", type=int, required=True, help="average the epochs from this one to the last")
    p.add_argument("--data", required=True, help="the run's dataset (BatchNorm statistics, evaluation)")
    p.add_argument("--out", required=True, help="output model path, e.g. models/mine_swa.keras")
    p.add_argument("--base-weight", type=float, default=0.0, metavar="W",
                   help="blend the average with the model the run fine-tuned (its --init-model), that one at weight "
                        "W in [0, 1) (WiSE-FT; default 0: off); with it, --from-epoch may be the last epoch")
    p.add_argument("--skip-unknown", action="store_true")
    p.set_defaults(handler=cmd_average, precheck=check_average)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a model on a dataset split")
    p.add_argument("--data", required=True)
    p.add_argument("--split", choices=(*SPLITS, "all"), default=None,
                   help="default: public_test when the data has it, else all images")
    p.add_argument("--model", help="model file (default: the shipped models of --profile)")
    p.add_argument("--profile", choices=tuple(PROFILES), default=DEFAULT_PROFILE,
                   help="; ".join(f"{k}: {v}" for k, v in PROFILES.items()) + f" (default {DEFAULT_PROFILE})")
    add_tta_option(p)
    p.add_argument("--corruptions", metavar="LIST",
                   help="also measure under camera conditions: 'all' or a comma list of "
                        "blur,noise,jpeg,dark,contrast,lowres,tilt,occlusion (the split's crops, corrupted "
                        "deterministically; prints each condition's accuracy and their mean)")
    p.add_argument("--severity", default="all", choices=("1", "2", "3", "4", "5", "all"),
                   help="with --corruptions: severity 1 (mild) to 5 (harsh), or all (default: each crop at one "
                        "of the five, in equal shares)")
    p.add_argument("--corruption-seed", type=int, default=0, help="with --corruptions: the corruptions' seed")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--skip-unknown", action="store_true")
    p.set_defaults(handler=cmd_evaluate, precheck=check_evaluate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fer",
                                     description="Facial-expression recognition (FER2013 emotions).")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_average(sub)
    cli_predict.add_commands(sub)
    cli_scale.add_commands(sub)
    export.add_command(sub)
    return parser


class _Bar:
    """tqdm progress bars for training."""

    def __init__(self) -> None:
        self.bar = None

    def on_train_begin(self, epochs: int, steps: int, initial_epoch: int) -> None:
        self.epochs, self.steps = epochs, steps

    def on_batch(self, epoch: int, step: int, steps: int, logs: dict) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch", leave=False)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{logs.get('loss', 0):.3f}", acc=f"{logs.get('accuracy', 0):.3f}")

    def on_epoch(self, epoch: int, epochs: int, logs: dict) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        print(f"epoch {epoch}/{epochs}: loss {logs.get('loss', 0):.4f} acc {logs.get('accuracy', 0):.4f} "
              f"val_loss {logs.get('val_loss', 0):.4f} val_acc {logs.get('val_accuracy', 0):.4f} "
              f"({logs.get('seconds', 0):.0f}s)", flush=True)


def _check_exists(path: str | None, what: str, hint: str) -> None:
    if path is not None and not os.path.exists(os.path.expanduser(path)):
        raise ValueError(f"{what} {path} does not exist; {hint}")


def check_train(args) -> None:
    """What ``train`` can refuse before the data loads: --data, --init-model and --out at once, then the options
    (their check needs the architectures, so Keras)."""
    _check_exists(args.data, "dataset path", "give a fer2013.csv file or a folder of class folders")
    _check_exists(args.init_model, "--init-model", "give a .keras model to fine-tune")
    if not str(args.out).endswith(".keras"):
        raise ValueError(f"--out {args.out} must end in .keras")
    quiet_keras_import()
    config_from_args(args).validate()


def check_average(args) -> None:
    from fer.averaging import run_checkpoints

    if not 0 <= args.base_weight < 1:
        raise ValueError(f"--base-weight must be in [0, 1); got {args.base_weight}")
    run_checkpoints(args.run, args.from_epoch, args.base_weight)
    _check_exists(args.data, "dataset path", "give the run's fer2013.csv file or folder")


def check_evaluate(args) -> None:
    from fer.corruptions import parse_conditions

    _check_exists(args.data, "dataset path", "give a fer2013.csv file or a folder of class folders")
    _check_exists(args.model, "model file", "give a .keras model, or leave --model out for the shipped ones")
    if args.corruptions:
        parse_conditions(args.corruptions)


def cmd_train(args) -> int:
    from fer.data import load_dataset
    from fer.training import train

    cfg = config_from_args(args)
    cfg.validate()
    data = load_dataset(args.data, skip_unknown=args.skip_unknown)
    command = "python -m fer " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = train(data, cfg, args.out, resume=args.resume, listener=_Bar(), init_model=args.init_model,
                   command=command)
    val = next(iter(result.card.metrics.values()))
    state = ("stopped early (resume with --resume)" if result.cancelled
             else f"stopped by --patience {cfg.patience}" if result.card.epochs < result.card.config["epochs"]
             else "done")
    print(f"{state}: best epoch {result.card.best_epoch}/{result.card.epochs}, "
          f"{next(iter(result.card.metrics))} accuracy {val['accuracy']:.4f}; saved {result.model_path}")
    return 130 if result.cancelled else 0


def cmd_average(args) -> int:
    from fer.averaging import average_run
    from fer.data import load_dataset

    data = load_dataset(args.data, skip_unknown=args.skip_unknown)
    command = "python -m fer " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    path, card = average_run(data, args.run, args.out, first_epoch=args.from_epoch, command=command,
                             base_weight=args.base_weight)
    split, metrics = next(iter(card.metrics.items()))
    single = card.averaged["best_single_epoch"]
    print(f"averaged epochs {args.from_epoch}-{card.averaged['last_epoch']}: {split} accuracy "
          f"{metrics['accuracy']:.4f} (best single epoch {single['epoch']}: {single['accuracy']:.4f}); saved {path}")
    return 0


def cmd_evaluate(args) -> int:
    from dataclasses import replace

    from fer.data import load_dataset
    from fer.profiles import evaluate_ensemble, load_profile

    ensemble = load_profile(args.profile, args.model)
    if args.tta is not None:
        ensemble = replace(ensemble, tta=None if args.tta == "none" else args.tta)
    data = load_dataset(args.data, skip_unknown=args.skip_unknown)
    split = args.split or ("public_test" if "public_test" in data.splits else "all")
    result = evaluate_ensemble(ensemble, data.split(split))
    result.update(split=split, model=str(args.model or "default"), architecture=ensemble.cards[0].architecture)
    if args.corruptions:
        result["corruptions"] = _corruptions(ensemble, data.split(split), args)
    if args.json:
        print(json.dumps(result))
        return 0
    plain = result["uncorrected"]
    print(f"Loss: {result['loss']}  Accuracy: {result['accuracy']}  Balanced accuracy: {result['balanced_accuracy']}"
          f"  ({result['n']} images, {split}; profile {args.profile}: {result['passes']} model "
          f"pass{'es' if result['passes'] != 1 else ''} per face"
          f"{', TTA ' + result['tta'] if result['tta'] else ''}, prior correction tau={result['tau']})")
    print(f"Without the prior correction: accuracy {plain['accuracy']}, balanced accuracy {plain['balanced_accuracy']}")
    for name, m in result["per_class"].items():
        print(f"  {name:9s} precision {m['precision']:.3f}  recall {m['recall']:.3f}  "
              f"f1 {m['f1']:.3f}  n={m['support']}")
    if args.corruptions:
        from fer.robustness import format_table

        rob = result["corruptions"]
        print(f"\nUnder camera conditions (severity {rob['severity']}, seed {rob['seed']}, accuracy):")
        print(format_table({f"profile {args.profile}": rob}))
    return 0


def _corruptions(ensemble, split, args) -> dict:
    from fer.corruptions import parse_conditions
    from fer.robustness import ensemble_classifier, robustness

    severity = args.severity if args.severity == "all" else int(args.severity)
    return robustness(ensemble_classifier(ensemble), split.x, split.y, parse_conditions(args.corruptions),
                      severity, args.corruption_seed)


def quiet_keras_import() -> None:
    """Import Keras (and TensorFlow) with its start-up chatter on stderr silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        saved = os.dup(2)
    except OSError:
        saved = None
    try:
        if saved is not None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        import keras  # noqa: F401
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
        try:
            if getattr(args, "precheck", None) is not None:
                args.precheck(args)  # bad options fail in a fraction of a second, before Keras loads
            quiet_keras_import()
            return handler(args)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except (ValueError, OSError) as exc:
            print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
            return 2
