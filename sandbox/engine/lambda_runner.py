"""A Lambda step's function inside a step subprocess: the deployed zip's handler called with the
step's arguments as the event; the returned dict (or the error) is written as JSON.

usage: lambda_runner.py CODE_ZIP HANDLER EVENT_JSON RESULT_JSON
"""

import importlib
import json
import os
import sys
import tempfile
import traceback
import uuid
import zipfile


class Context:
    def __init__(self):
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = "$LATEST"
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 128

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def main(code_zip: str, handler: str, event_json: str, result_json: str) -> int:
    code_dir = tempfile.mkdtemp(prefix="lambda-")
    with zipfile.ZipFile(code_zip) as archive:
        archive.extractall(code_dir)
    sys.path.insert(0, code_dir)
    module_name, _, function_name = handler.rpartition(".")
    with open(event_json) as fh:
        event = json.load(fh)
    context = Context()
    print(f"START RequestId: {context.aws_request_id} Version: $LATEST")
    try:
        function = getattr(importlib.import_module(module_name.replace("/", ".")), function_name)
        result = function(event, context)
    except Exception as exc:
        traceback.print_exc()
        with open(result_json, "w") as fh:
            json.dump({"errorType": type(exc).__name__, "errorMessage": str(exc)}, fh)
        return 1
    finally:
        print(f"END RequestId: {context.aws_request_id}")
    with open(result_json, "w") as fh:
        json.dump(result, fh, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
