"""SageMaker inference handler (model_fn / input_fn / predict_fn / output_fn) for batch transform.

Input: CSV of the raw feature columns, with or without the header row (a split mini-batch has none).
Output: one CSV line per input row: probability of the positive class, predicted label, and the model
version that produced it (MODEL_VERSION / MODEL_PACKAGE_ARN from the model's environment).
With RECORD_IDS=first-column (what the inference pipeline sets: its validation step writes the checked
batch with the record id first, no header, the model's columns in training order) each line starts with
the record id: `record_id,probability,label,model_version`, so labels can be joined later.
    python pipelines/steps/inference.py --model-dir out/model --input batch.csv --output predictions.csv
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tabular import DEFAULT_MISSING_MARKERS, FeatureTransform

MODEL_FILE = "xgboost-model.json"
DECISION_THRESHOLD = 0.5


class LoadedModel:
    def __init__(self, booster, transform: FeatureTransform, version: str, ids_first: bool = False):
        self.booster, self.transform, self.version = booster, transform, version
        self.ids_first = ids_first


def model_fn(model_dir: str) -> LoadedModel:
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(os.path.join(model_dir, MODEL_FILE))
    with open(os.path.join(model_dir, "preprocessing.json")) as handle:
        transform = FeatureTransform.from_json(json.load(handle))
    version = os.environ.get("MODEL_VERSION") or os.environ.get("MODEL_PACKAGE_ARN") or "unregistered"
    return LoadedModel(booster, transform, version, os.environ.get("RECORD_IDS") == "first-column")


def input_fn(body, content_type: str = "text/csv"):
    """The request body as a DataFrame of raw feature columns."""
    if content_type.split(";")[0].strip() != "text/csv":
        raise ValueError(f"unsupported content type {content_type}: send text/csv")
    raw = body if isinstance(body, (bytes, bytearray)) else str(body).encode()
    # SageMaker calls input_fn(body, content_type) without the model: the switch is the model's environment.
    ids_first = os.environ.get("RECORD_IDS") == "first-column"
    first_line = raw[: raw.find(b"\n")] if b"\n" in raw else raw
    header = not ids_first and _looks_like_header(first_line)
    frame = _read_numbers(raw, header, ids_first)
    if frame is not None:
        return frame
    import pandas as pd

    if ids_first:
        # Written by the validation step: no header, the id first and kept as text (leading zeros matter).
        return pd.read_csv(io.BytesIO(raw), header=None, dtype={0: str}, na_values=["?"], keep_default_na=True)
    # Without a header pandas numbers the columns; predict_fn maps them to the training column order.
    return pd.read_csv(io.BytesIO(raw), header=0 if header else None, na_values=["?"], skipinitialspace=True)


def _read_numbers(raw: bytes, header: bool, ids_first: bool):
    """The body read by pyarrow's CSV reader (several times faster than pandas') when every feature field is
    a plain number or a missing marker; None otherwise (or without pyarrow), and pandas reads it as before."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pcsv
    except ImportError:
        return None
    end = raw.find(b"\n") if b"\n" in raw else len(raw)
    fields = next(csv.reader([raw[:end].decode(errors="replace")], skipinitialspace=True), [])
    text = raw[end + 1 :] if header else raw
    names = fields if header else list(range(len(fields)))
    generated = [f"f{i}" for i in range(len(names))]
    types = {name: pa.float64() for name in generated}
    if ids_first and generated:
        types[generated[0]] = pa.string()
    try:
        table = pcsv.read_csv(
            pa.py_buffer(text),
            read_options=pcsv.ReadOptions(column_names=generated),
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                null_values=[*DEFAULT_MISSING_MARKERS, "?"],
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    frame = table.to_pandas(split_blocks=True)
    frame.columns = names
    return frame


def _looks_like_header(line: bytes) -> bool:
    for field in line.decode(errors="replace").split(","):
        field = field.strip()
        if not field or field == "?":
            continue
        try:
            float(field)
        except ValueError:
            return True
    return False


def predict_fn(data, model: LoadedModel):
    """(probabilities, labels) for each row, with the training-time imputation and encoding."""
    import numpy as np

    columns = model.transform.raw_columns
    ids = None
    if model.ids_first:
        ids = data.pop(0).to_numpy()
        data.columns = range(len(data.columns))
    if all(isinstance(c, int) for c in data.columns):
        if len(data.columns) != len(columns):
            raise ValueError(
                f"rows have {len(data.columns)} fields; the model expects {len(columns)} "
                f"({', '.join(columns[:5])}, ...)"
            )
        data.columns = columns
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise ValueError(f"input lacks column(s) {', '.join(missing[:5])} the model was trained on")
    matrix = model.transform.matrix(data)
    # In-place prediction skips building a DMatrix copy of the batch; columns are in training order.
    probabilities = model.booster.inplace_predict(matrix, validate_features=False)
    labels = (probabilities >= DECISION_THRESHOLD).astype(np.int8)
    if ids is not None:
        return probabilities, labels, model.version, ids
    return probabilities, labels, model.version


def output_fn(prediction, accept: str = "text/csv"):
    """CSV lines `probability,label,model_version`, after the record id when the input carried one."""
    probabilities, labels, version = prediction[:3]
    if accept.split(";")[0].strip() not in ("text/csv", "*/*"):
        raise ValueError(f"unsupported accept type {accept}: ask for text/csv")
    lines = _fixed_lines(probabilities, labels, f",{version}\n")
    if len(prediction) == 4:
        return _with_ids(prediction[3], lines)
    return lines.tobytes().decode()


def _fixed_lines(probabilities, labels, suffix: str):
    """`f"{p:.6f},{label}{suffix}"` for every row, as a (rows, width) byte matrix built with whole-array
    integer arithmetic: the same bytes as Python's formatting (correctly rounded, ties to even), without
    a Python call per row."""
    import numpy as np

    p = np.asarray(probabilities, dtype=np.float32)
    mantissa, exponent = np.frexp(p.astype(np.float64))
    # p = m * 2**(e - 24) exactly, with m < 2**24 (float32); p * 10**6 = m * 10**6 / 2**(24 - e).
    scaled = (mantissa * 2.0**24).astype(np.uint64) * np.uint64(10**6)
    shift = np.clip(24 - exponent, 1, 63).astype(np.uint64)
    whole = scaled >> shift
    rest = scaled & ((np.uint64(1) << shift) - np.uint64(1))
    half = np.uint64(1) << (shift - np.uint64(1))
    micro = whole + ((rest > half) | ((rest == half) & (whole & np.uint64(1) == 1))).astype(np.uint64)
    tail = suffix.encode()
    out = np.empty((len(p), 10 + len(tail)), dtype=np.uint8)
    out[:, 0] = ord("0") + micro // np.uint64(10**6)
    out[:, 1] = ord(".")
    fraction = micro % np.uint64(10**6)
    for i in range(6):
        out[:, 2 + i] = ord("0") + (fraction // np.uint64(10 ** (5 - i))) % np.uint64(10)
    out[:, 8] = ord(",")
    out[:, 9] = ord("0") + np.asarray(labels, dtype=np.uint8)
    out[:, 10:] = np.frombuffer(tail, dtype=np.uint8)
    return out


def _with_ids(ids, lines) -> str:
    """`{id},{line}` for every row: joined by pyarrow when it is there, else one f-string per row."""
    import numpy as np

    texts = ids.tolist()
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:
        pa = None
    if pa is None or not all(isinstance(t, str) for t in texts):
        return "".join([f"{i},{line}" for i, line in zip(texts, lines.tobytes().decode().splitlines(True))])
    rows, width = lines.shape
    offsets = pa.py_buffer(np.arange(0, (rows + 1) * width, width, dtype=np.int64))
    fixed = pa.Array.from_buffers(pa.large_string(), rows, [None, offsets, pa.py_buffer(lines)])
    joined = pc.binary_join_element_wise(
        pa.array(texts, type=pa.large_string()), fixed, pa.scalar(",", pa.large_string())
    )
    ends = np.frombuffer(joined.buffers()[1], dtype=np.int64, count=rows + 1)
    return bytes(memoryview(joined.buffers()[2])[int(ends[0]) : int(ends[-1])]).decode()


def transform_file(model: LoadedModel, input_path: str, output_path: str) -> int:
    """Apply the handler to one file, as a batch transform does to one object; returns the row count."""
    with open(input_path, "rb") as handle:
        body = handle.read()
    prediction = predict_fn(input_fn(body, "text/csv"), model)
    with open(output_path, "w") as handle:
        handle.write(output_fn(prediction, "text/csv"))
    return len(prediction[0])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--model-dir", default="/opt/ml/model")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    rows = transform_file(model_fn(args.model_dir), args.input, args.output)
    print(json.dumps({"rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
