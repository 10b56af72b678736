"""Publish the metrics.json a network-isolated step wrote (it cannot reach CloudWatch itself): this small
job runs with the network, reads the file from the isolated step's output and calls PutMetricData with
the execution role, as the step would have.
    python pipelines/steps/publish_metrics.py --input out/drift
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import metric_data
from tabular import DataError, run_or_fail


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--input", default="/opt/ml/processing/input/metrics", help="metrics.json or its directory")
    p.add_argument("--failure-file", default="/opt/ml/output/message")
    return p.parse_args(argv)


def run(args) -> dict:
    try:
        namespace, data = metric_data.read(args.input)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{args.input}: no readable {metric_data.METRICS_FILE} ({exc})") from None
    return {"namespace": namespace, "published": metric_data.publish(namespace, data)}


def main(argv=None) -> int:
    args = parse_args(argv)
    print(json.dumps(run_or_fail(run, args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
