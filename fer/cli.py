"""Command line: ``python -m fer {train,evaluate,predict,video} ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import warnings
from pathlib import Path

from fer.cli_predict import add_tta_option
from fer.labels import SPLITS
from fer.profiles import DEFAULT_PROFILE, PROFILES


def _add_train(sub) -> None:
    from fer.training import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train a model on a dataset (resumable)")
    p.add_argument("--data", required=True, help="fer2013.csv, a Kaggle train/test folder or a class-folder tree")
    p.add_argument("--arch", default=d.arch, help=f"architecture (default {d.arch}; see --list-archs)")
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help=f"number of epochs (default {d.epochs}); with --time-budget, the most to run")
    p.add_argument("--time-budget", type=float, default=0.0, metavar="SECONDS",
                   help="time this machine's speed first, then train as many epochs as fit in SECONDS "
                        "(the cosine schedule is fitted to them)")
    p.add_argument("--patience", type=int, default=d.patience, metavar="EPOCHS",
                   help="stop early once this many epochs in a row have not beaten the best validation "
                        "accuracy (default 0: off)")
    p.add_argument("--out", required=True, help="output model path, e.g. models/mine.keras")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run that writes --out")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default=d.optimizer)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--schedule", choices=("cosine", "onecycle", "constant"), default=d.schedule)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--class-weights", action="store_true", help="weight classes by inverse frequency")
    p.add_argument("--no-augment", action="store_true", help="train without the in-model augmentation")
    p.add_argument("--augment-strength", type=float, default=d.augment_strength,
                   help="scale every augmentation range (0 = none, 1 = default, up to 2)")
    p.add_argument("--precision", choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"), default="auto")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="random seed (a fine-tuning run adds its stage number to it)")
    p.add_argument("--init-model", help="fine-tune: start from this model's weights (same architecture)")
    p.add_argument("--skip-unknown", action="store_true", help="ignore unknown class folders / labels")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep every epoch's checkpoint in the run folder, for `python -m fer average`")


def _add_average(sub) -> None:
    p = sub.add_parser("average", help="average the weights of a run's last epochs (SWA) into one model")
    p.add_argument("--run", required=True, help="the --out of a run trained with --keep-checkpoints")
    p.add_argument("--from-epoch", type=int, required=True, help="average the epochs from this one to the last")
    p.add_argument("--data", required=True, help="the run's dataset (BatchNorm statistics, evaluation)")
    p.add_argument("--out", required=True, help="output model path, e.g. models/mine_swa.keras")
    p.add_argument("--skip-unknown", action="store_true")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a model on a dataset split")
    p.add_argument("--data", required=True)
    p.add_argument("--split", choices=(*SPLITS, "all"), default=None,
                   help="default: public_test when the data has it, else all images")
    p.add_argument("--model", help="model file (default: the shipped models of --profile)")
    p.add_argument("--profile", choices=tuple(PROFILES), default=DEFAULT_PROFILE,
                   help="; ".join(f"{k}: {v}" for k, v in PROFILES.items()) + f" (default {DEFAULT_PROFILE})")
    add_tta_option(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--skip-unknown", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fer", description="Facial-expression recognition (FER2013 emotions).")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_average(sub)
    try:
        from fer import cli_predict
    except ImportError:
        cli_predict = None
    if cli_predict is not None:
        cli_predict.add_commands(sub)
    from fer import export

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


def cmd_train(args) -> int:
    from fer.data import load_dataset
    from fer.training import TrainConfig, train

    cfg = TrainConfig(
        arch=args.arch, epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule, warmup_epochs=args.warmup_epochs,
        label_smoothing=args.label_smoothing, class_weights=args.class_weights, augment=not args.no_augment,
        augment_strength=args.augment_strength,
        precision=args.precision, seed=args.seed, time_budget_s=args.time_budget,
        keep_checkpoints=args.keep_checkpoints, patience=args.patience)
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
    from fer.averaging import average_run, run_checkpoints
    from fer.data import load_dataset

    run_checkpoints(args.run, args.from_epoch)  # a bad run or epoch fails before the data loads
    data = load_dataset(args.data, skip_unknown=args.skip_unknown)
    command = "python -m fer " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    path, card = average_run(data, args.run, args.out, first_epoch=args.from_epoch, command=command)
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
    if args.json:
        print(json.dumps(result))
        return 0
    plain = result["uncorrected"]
    print(f"Loss: {result['loss']}  Accuracy: {result['accuracy']}  Balanced accuracy: {result['balanced_accuracy']}"
          f"  ({result['n']} images, {split}; profile {args.profile}: {result['passes']} model passes per face"
          f"{', TTA ' + result['tta'] if result['tta'] else ''}, prior correction tau={result['tau']})")
    print(f"Without the prior correction: accuracy {plain['accuracy']}, balanced accuracy {plain['balanced_accuracy']}")
    for name, m in result["per_class"].items():
        print(f"  {name:9s} precision {m['precision']:.3f}  recall {m['recall']:.3f}  "
              f"f1 {m['f1']:.3f}  n={m['support']}")
    return 0


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
    quiet_keras_import()
    handler = {"train": cmd_train, "evaluate": cmd_evaluate, "average": cmd_average}.get(args.command) or args.handler
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
        try:
            return handler(args)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except (ValueError, OSError) as exc:
            print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
            return 2
