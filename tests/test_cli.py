import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synth import make_split, write_kaggle_folders

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "fer", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)


def in_process(capsys, *args: str) -> tuple[int, str, str]:
    """``python -m fer ARGS`` through :func:`fer.cli.main` in this process: (exit code, stdout, stderr).

    The commands below that load Keras run here, where it is loaded already; ``run_cli`` keeps one of each
    (train, evaluate) as a real ``python -m fer`` process."""
    from fer.cli import main

    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = write_kaggle_folders(root / "data", {"train": make_split(6, 1), "public_test": make_split(2, 2)})
    out = root / "m.keras"
    proc = run_cli("train", "--data", str(data), "--epochs", "1", "--batch-size", "16", "--camera", "0.5",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return data, out, proc


def test_train_then_evaluate_json(trained, capsys):
    data, out, proc = trained
    assert "public_test accuracy" in proc.stdout and out.is_file() and out.with_suffix(".json").is_file()
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["command"].startswith("python -m fer train --data") and card["epochs"] == 1
    assert len(card["prior"]) == 7 and abs(sum(card["prior"]) - 1) < 1e-3 and 0 <= card["tau"] <= 1.5
    assert card["config"]["camera"] == 0.5 and card["config"]["camera_conditions"] == "all"
    ev = run_cli("evaluate", "--data", str(data), "--model", str(out), "--profile", "live", "--json")
    assert ev.returncode == 0, ev.stderr[-2000:]
    result = json.loads(ev.stdout)
    assert {"accuracy", "balanced_accuracy", "loss", "n", "labels", "per_class", "confusion"} <= set(result)
    assert result["n"] == 14 and result["split"] == "public_test" and len(result["confusion"]) == 7
    assert result["passes"] == 1 and result["tau"] == card["tau"] and result["profile"] == "live"
    assert result["uncorrected"]["accuracy"] == card["metrics"]["public_test"]["accuracy"]
    code, stdout, _ = in_process(capsys, "evaluate", "--data", str(data), "--model", str(out), "--json")
    photo = json.loads(stdout)
    assert code == 0 and photo["profile"] == "photo" and photo["passes"] == 2 and photo["tta"] == "flip"
    code, stdout, _ = in_process(capsys, "evaluate", "--data", str(data), "--model", str(out), "--split", "all",
                                 "--tta")
    assert code == 0 and stdout.startswith("Loss: ") and "Accuracy: " in stdout


def test_evaluate_under_camera_conditions(trained, capsys):
    data, out, _ = trained
    code, stdout, stderr = in_process(capsys, "evaluate", "--data", str(data), "--model", str(out), "--profile",
                                      "live", "--corruptions", "noise,dark", "--severity", "4", "--json")
    assert code == 0, stderr[-2000:]
    result = json.loads(stdout)
    rob = result["corruptions"]
    assert set(rob["conditions"]) == {"noise", "dark"} and rob["severity"] == 4 and rob["n"] == result["n"]
    assert rob["clean"]["accuracy"] == result["accuracy"]
    code, stdout, _ = in_process(capsys, "evaluate", "--data", str(data), "--model", str(out), "--profile", "live",
                                 "--corruptions", "all")
    assert code == 0 and "Under camera conditions" in stdout and "mean of the 8" in stdout
    bad = run_cli("evaluate", "--data", str(data), "--model", str(out), "--corruptions", "fog")
    assert bad.returncode == 2 and "unknown camera condition" in bad.stderr


@pytest.mark.parametrize("args", [
    ["evaluate", "--data", "/nonexistent/dir"],
    ["evaluate", "--data", ".", "--corruptions", "fog"],
    ["train", "--data", "/nonexistent/dir", "--out", "x.keras"],
    ["average", "--run", "/nonexistent/x.keras", "--from-epoch", "2", "--data", ".", "--out", "y.keras"],
])
def test_a_bad_path_or_option_fails_before_keras_loads(args):
    code = f"import sys; from fer.cli import main; rc = main({args!r}); print(rc, 'keras' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["2", "False"], proc.stderr[-2000:]
    assert proc.stderr.startswith("error: ")


# Each as a ``python -m fer`` process, except three of the training options: their check imports Keras first
# (fer.cli.check_train), which takes a process most of ten seconds; one of them (epochs 0) still runs as a process,
# so TensorFlow's start-up chatter is seen to stay off stderr, and the other three go through fer.cli.main here.
@pytest.mark.parametrize("args, message, process", [
    (["evaluate", "--data", "/nonexistent/dir"], "does not exist", True),
    (["evaluate", "--data", ".", "--model", "/nonexistent.keras"], "does not exist", True),
    (["train", "--data", ".", "--epochs", "0", "--out", "x.keras"], "epochs must be at least 1", True),
    (["train", "--data", ".", "--arch", "nope", "--out", "x.keras"], "arch must be one of", False),
    (["train", "--data", ".", "--patience", "-1", "--out", "x.keras"], "patience must be 0", False),
    (["train", "--data", ".", "--camera", "2", "--out", "x.keras"], "camera must be a share", False),
    (["average", "--run", "/nonexistent/x.keras", "--from-epoch", "2", "--data", ".", "--out", "y.keras"],
     "no training run found", True),
])
def test_bad_arguments_are_one_line_errors(args, message, process, capsys):
    if process:
        proc = run_cli(*args)
        code, stderr = proc.returncode, proc.stderr
    else:
        code, _, stderr = in_process(capsys, *args)
    assert code == 2
    assert message in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_every_training_option_is_a_flag_with_the_configs_default_and_choices():
    from fer.cli import build_parser, config_from_args
    from fer.training import TrainConfig

    parse = build_parser().parse_args
    assert config_from_args(parse(["train", "--data", "d", "--out", "m.keras"])) == TrainConfig()
    cfg = config_from_args(parse(["train", "--data", "d", "--out", "m.keras", "--no-augment", "--class-weights",
                                  "--time-budget", "60", "--optimizer", "sgd", "--momentum", "0.8"]))
    assert (cfg.augment, cfg.class_weights, cfg.time_budget_s, cfg.optimizer, cfg.momentum) == (False, True, 60.0,
                                                                                                "sgd", 0.8)
    with pytest.raises(SystemExit):
        parse(["train", "--data", "d", "--out", "m.keras", "--schedule", "linear"])


def test_every_subcommand_is_dispatched_by_its_handler():
    from fer import cli

    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert {"train", "evaluate", "average", "predict", "video"} <= set(commands)
    assert all(callable(p.get_default("handler")) for p in commands.values())
    assert commands["train"].get_default("handler") is cli.cmd_train
