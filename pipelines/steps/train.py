"""Training entry point (SageMaker XGBoost script mode): gradient-boosted trees on the preprocessed
splits, logging train/validation AUC each round (the tuning objective is parsed from these lines).

Hyperparameters come as --name value arguments (as SageMaker passes them), with SM_HPS as fallback;
paths default to SM_CHANNEL_TRAIN / SM_CHANNEL_VALIDATION / SM_MODEL_DIR like any script-mode job:
    python pipelines/steps/train.py --train out/train --validation out/validation --model-dir out/model
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tabular import DataError, fail, find_csv

MODEL_FILE = "xgboost-model.json"
DEFAULTS = {
    "max_depth": 4,
    "eta": 0.2,
    "num_round": 60,
    "subsample": 1.0,
    "min_child_weight": 1.0,
    "colsample_bytree": 1.0,
    "gamma": 0.0,
    "lambda": 1.0,
    "alpha": 0.0,
}
INTEGER_HYPERPARAMETERS = {"max_depth", "num_round"}


def _hyperparameter_defaults() -> dict:
    """SM_HPS (JSON, set by SageMaker and the sandbox) over the script's own defaults."""
    values = dict(DEFAULTS)
    try:
        for key, value in json.loads(os.environ.get("SM_HPS") or "{}").items():
            if key in DEFAULTS:
                values[key] = value
    except json.JSONDecodeError:
        pass
    return values


def parse_args(argv=None):
    env = os.environ.get
    hp = _hyperparameter_defaults()
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--train", default=env("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    p.add_argument("--validation", default=env("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation"))
    p.add_argument("--model-dir", "--model_dir", dest="model_dir", default=env("SM_MODEL_DIR", "/opt/ml/model"))
    p.add_argument("--output-data-dir", default=env("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"))
    p.add_argument("--failure-file", default="/opt/ml/output/failure")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--nthread", type=int, default=0, help="0: every core")
    for name, default in hp.items():
        p.add_argument(f"--{name}", type=int if name in INTEGER_HYPERPARAMETERS else float, default=default)
    args, _unknown = p.parse_known_args(argv)  # SageMaker may pass hyperparameters this script does not use
    return args


def load_split(path: str):
    """(labels, features, feature names) from a preprocess output: header, label first."""
    import numpy as np
    import pandas as pd

    csv = find_csv(path)
    with open(csv) as handle:
        header = handle.readline().strip().split(",")
    if not header or header[0] != "label":
        raise DataError(f"{csv.name} is not a preprocessed split (first column must be 'label')")
    data = pd.read_csv(csv, dtype=np.float32).to_numpy()
    if not len(data):
        raise DataError(f"{csv.name} has no rows")
    return data[:, 0], data[:, 1:], header[1:]


def train(args):
    import xgboost as xgb

    y_train, x_train, names = load_split(args.train)
    y_val, x_val, _ = load_split(args.validation)
    dtrain = xgb.DMatrix(x_train, label=y_train, feature_names=names)
    dvalid = xgb.DMatrix(x_val, label=y_val, feature_names=names)
    params = {
        "objective": "binary:logistic",
        "eval_metric": "auc",
        "max_depth": args.max_depth,
        "eta": args.eta,
        "subsample": args.subsample,
        "min_child_weight": args.min_child_weight,
        "colsample_bytree": args.colsample_bytree,
        "gamma": args.gamma,
        "lambda": args.__dict__["lambda"],
        "alpha": args.alpha,
        "seed": args.seed,
        "tree_method": "hist",
    }
    if args.nthread:
        params["nthread"] = args.nthread
    history: dict = {}
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=args.num_round,
        evals=[(dtrain, "train"), (dvalid, "validation")],
        evals_result=history,
        verbose_eval=max(1, args.num_round // 10),
    )
    final = {f"{split}-auc": float(history[split]["auc"][-1]) for split in ("train", "validation")}
    # The last line is what the training job's MetricDefinitions (and the tuner's objective) read.
    print(f"final train-auc:{final['train-auc']:.6f} validation-auc:{final['validation-auc']:.6f}", flush=True)
    return booster, final, params


def save(booster, final, params, args) -> None:
    os.makedirs(args.model_dir, exist_ok=True)
    booster.save_model(os.path.join(args.model_dir, MODEL_FILE))
    transform = os.path.join(
        args.train if os.path.isdir(args.train) else os.path.dirname(args.train), "preprocessing.json"
    )
    if os.path.exists(transform):
        shutil.copy(transform, os.path.join(args.model_dir, "preprocessing.json"))
    with open(os.path.join(args.model_dir, "training.json"), "w") as handle:
        json.dump(
            {
                "hyperparameters": {k: v for k, v in params.items() if k not in ("seed", "nthread")},
                "num_round": args.num_round,
                "metrics": final,
            },
            handle,
            indent=2,
        )


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        booster, final, params = train(args)
    except DataError as exc:
        fail(str(exc), args.failure_file)
    save(booster, final, params, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
