"""Batch transform inside one instance's process: the SageMaker inference-handler convention (model_fn,
input_fn, predict_fn, output_fn) applied to each input object the instance was given, request by request
as SageMaker sends them, one `<name>.out` per object with the results in input order
(https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform.html).

SplitType Line cuts an object at newlines: MultiRecord sends as many whole lines as fit in MaxPayloadInMB
(0: the whole object), SingleRecord one line per request. SplitType None sends the whole object.
AssembleWith Line ends every response with a newline; None concatenates the responses as they are.

usage: transform_runner.py CODE_DIR ENTRY MODEL_DIR INPUT_DIR OUTPUT_DIR CONTENT_TYPE ACCEPT
                           [SPLIT_TYPE BATCH_STRATEGY MAX_PAYLOAD_MB ASSEMBLE_WITH]
"""

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

MB = 1024 * 1024


class PayloadTooLarge(Exception):
    pass


def requests(path: Path, split_type: str, strategy: str, max_payload_mb: int) -> Iterator[bytes]:
    """The request bodies SageMaker makes of one object, in order."""
    limit = max_payload_mb * MB
    with open(path, "rb") as handle:
        if split_type != "Line" or (strategy == "MultiRecord" and limit == 0):
            body = handle.read()
            if limit and len(body) > limit:
                raise PayloadTooLarge(
                    f"{path.name}: {len(body)} bytes exceed MaxPayloadInMB ({max_payload_mb}) and SplitType is "
                    f"{split_type}: the object cannot be split"
                )
            yield body
            return
        if strategy == "SingleRecord":
            for line in handle:
                if not line.strip():
                    continue
                if limit and len(line) > limit:
                    raise PayloadTooLarge(f"{path.name}: a record exceeds MaxPayloadInMB ({max_payload_mb})")
                yield line
            return
        pending = b""
        while True:
            block = handle.read(limit)
            if not block:
                break
            pending += block
            while len(pending) >= limit:
                cut = pending.rfind(b"\n", 0, limit)
                if cut < 0:
                    raise PayloadTooLarge(f"{path.name}: a record exceeds MaxPayloadInMB ({max_payload_mb})")
                yield pending[: cut + 1]
                pending = pending[cut + 1 :]
        if pending.strip():
            yield pending


def main(
    code_dir: str,
    entry: str,
    model_dir: str,
    input_dir: str,
    output_dir: str,
    content_type: str,
    accept: str,
    split_type: str = "None",
    strategy: str = "MultiRecord",
    max_payload_mb: str = "6",
    assemble_with: str = "None",
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
    text = content_type.startswith("text/")
    for path in inputs:
        target = Path(output_dir) / (str(path.relative_to(input_dir)) + ".out")
        target.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        try:
            with open(target, "wb") as out:
                for body in requests(path, split_type, strategy, int(max_payload_mb)):
                    data = handler.input_fn(body.decode() if text else body, content_type)
                    result = handler.output_fn(handler.predict_fn(data, model), accept)
                    if isinstance(result, tuple):
                        result = result[0]
                    result = result if isinstance(result, bytes) else str(result).encode()
                    out.write(result)
                    if assemble_with == "Line" and not result.endswith(b"\n"):
                        out.write(b"\n")
                    count += 1
        except PayloadTooLarge as exc:
            target.unlink(missing_ok=True)  # no output for an object that failed: its order could not be kept
            print(f"ClientError: {exc}", file=sys.stderr)
            return 1
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        print(f"transformed {path.name} -> {target.name} ({count} request(s))")
    print(f"{len(inputs)} object(s) transformed")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:12]))
