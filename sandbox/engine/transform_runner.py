"""Batch transform inside a step subprocess: the SageMaker inference-handler convention
(model_fn, input_fn, predict_fn, output_fn) applied to each input object, one `<name>.out` each.

usage: transform_runner.py CODE_DIR ENTRY MODEL_DIR INPUT_DIR OUTPUT_DIR CONTENT_TYPE ACCEPT
"""

import importlib.util
import sys
from pathlib import Path


def main(
    code_dir: str, entry: str, model_dir: str, input_dir: str, output_dir: str, content_type: str, accept: str
) -> int:
    sys.path.insert(0, code_dir)
    spec = importlib.util.spec_from_file_location(Path(entry).stem, str(Path(code_dir) / entry))
    assert spec is not None and spec.loader is not None, entry
    handler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler)
    missing = [f for f in ("model_fn", "input_fn", "predict_fn", "output_fn") if not hasattr(handler, f)]
    if missing:
        print(f"ModelError: {entry} does not define {', '.join(missing)}", file=sys.stderr)
        return 1
    model = handler.model_fn(model_dir)
    inputs = sorted(p for p in Path(input_dir).rglob("*") if p.is_file())
    for path in inputs:
        body = path.read_bytes()
        data = handler.input_fn(body.decode() if content_type.startswith("text/") else body, content_type)
        result = handler.output_fn(handler.predict_fn(data, model), accept)
        if isinstance(result, tuple):
            result = result[0]
        target = Path(output_dir) / (str(path.relative_to(input_dir)) + ".out")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(result if isinstance(result, bytes) else str(result).encode())
        print(f"transformed {path.name} -> {target.name}")
    print(f"{len(inputs)} object(s) transformed")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:8]))
