"""Preprocess step: validate a tabular CSV, split it into train/validation/test, impute and encode, and
write the data-quality baseline (Model Monitor statistics.json / constraints.json) of the raw features.

Runs the same in a SageMaker processing container (the defaults are its paths) and locally:
    python pipelines/steps/preprocess.py --input data.csv --target diagnosis --train-dir out/train ...
Malformed data fails with one line naming the column, value or line; nothing downstream runs.

The data is read once, as a stream of blocks (pyarrow's CSV reader: the SageMaker XGBoost 1.7-1 image
installs pyarrow for its own Parquet support), so memory stays flat however many rows arrive, and every
result is the same whatever the block size (--chunk-bytes):
- Each row's split follows from its class and its position among that class's rows: the class's rows
  are taken in blocks of 1,000, and a permutation drawn from a hash of (seed, class, block) sends
  exactly 70% / 15% / 15% (the configured fractions) of every block to train / validation / test. The
  split is stratified like a shuffled split, needs no shuffle of the whole table, and does not depend
  on how the file is cut into blocks.
- The transform (medians, categories, modes) and the baseline's bucket edges are fit on the first
  --fit-rows rows of the training split in file order (all of it for most datasets); the counts,
  moments, ranges and bucket counts of the baseline cover every training row, summed in fixed blocks
  of training rows so that floating-point sums do not depend on the read's block size either.
- Numeric values are written to the splits as they appear in the input (trimmed); missing ones get the
  median, categories their one-hot encoding. When every feature is numeric, in file order, and the
  target is the first or last column, a block with nothing to trim or unquote is parsed straight to
  numbers and its rows are written as their own bytes, the label in the target's place (the few rows
  with a missing number are formatted): the same bytes as formatting each field, without turning
  every number into text again.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import queue
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from contract import FAILURE, ContractCheck, columns_to_check
from snapshot import SnapshotError, open_dataset
from tabular import (
    DEFAULT_MISSING_MARKERS,
    DataError,
    FeatureStatistics,
    FeatureTransform,
    baseline_documents,
    histogram_edges,
    load_json,
    run_or_fail,
    split_list,
    write_json,
)

MIN_ROWS_PER_CLASS = 5
CHUNK_BYTES = 1 << 20  # the CSV reader's block: about 4k rows of 30 features (its memory grows with it)
FIT_ROWS = 50_000
STATS_BLOCK_ROWS = 16_384  # training rows per floating-point partial sum of the baseline
SPLIT_BLOCK = 1_000  # rows of one class dealt to train/validation/test by one permutation
PENDING_BYTES = 64 << 20  # rows held while only one class has been seen; more go to a temporary file
MAX_CLASSES_LISTED = 10_000
LINES = "lines"  # the one column of a block kept as its lines (see Preprocess._line_values)
MAX_GAP_SHARE = 8  # a block's rows are copied when at most 1 in this many has a missing number
MAX_SKIPPED_BLOCKS = 64  # blocks read as text, at most, before copying their rows is tried again
MIN_PIECE_BYTES = 64 << 10  # a block parsed in parallel is cut in pieces of at least this
COPY_LINES = True  # write clean rows as their own bytes (False: format every field, the same bytes, slower)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--input",
        default="/opt/ml/processing/input/data",
        help="the dataset: an S3 prefix or object, a folder, a CSV file or a glob; every CSV part under it, "
        "resolved now and read as one table",
    )
    p.add_argument("--dataset-uri", default="", help="where the input came from (recorded in the report)")
    p.add_argument("--target", default="diagnosis", help="binary target column")
    p.add_argument("--features", default="all", help="comma-separated feature columns, or 'all' (every other one)")
    p.add_argument("--categorical", default="", help="comma-separated categorical feature columns")
    p.add_argument("--missing-values", default="?", help="comma-separated extra missing-value markers")
    p.add_argument(
        "--positive-class",
        default="",
        help="target value meaning 1 (default: 1 for 0/1 targets, else the larger value when sorted)",
    )
    p.add_argument("--validation-fraction", type=float, default=0.15)
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--chunk-bytes",
        type=int,
        default=CHUNK_BYTES,
        help="bytes of CSV read and processed at a time (memory; the results do not depend on it)",
    )
    p.add_argument(
        "--fit-rows",
        type=int,
        default=FIT_ROWS,
        help="training rows (the first, in file order) the imputation, encoding and baseline buckets are fit on",
    )
    p.add_argument("--train-dir", default="/opt/ml/processing/train")
    p.add_argument("--validation-dir", default="/opt/ml/processing/validation")
    p.add_argument("--test-dir", default="/opt/ml/processing/test")
    p.add_argument("--baseline-dir", default="/opt/ml/processing/baseline")
    p.add_argument("--report-dir", default="/opt/ml/processing/report")
    p.add_argument("--snapshot-dir", default="", help="where to write snapshot.json (the parts read), if anywhere")
    p.add_argument(
        "--contract",
        default="",
        help="the data contract (JSON file or its directory): the data must meet it (DataValidationFailed)",
    )
    p.add_argument("--failure-file", default="/opt/ml/output/message")
    args = p.parse_args(argv)
    holdout = args.validation_fraction + args.test_fraction
    if not (args.validation_fraction > 0 and args.test_fraction > 0 and holdout < 1):
        p.error("--validation-fraction and --test-fraction must be above 0 and add up to less than 1")
    if args.chunk_bytes < 1024 or args.fit_rows < 1:
        p.error("--chunk-bytes must be at least 1024 and --fit-rows at least 1")
    return args


def _class_order(value: str):
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


# ---- the split: stratified, deterministic per row, independent of how the stream is cut ------------

_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
# Permutations x -> (a*x + o) mod SPLIT_BLOCK with a coprime to it and far from 0: neighbouring rows land apart.
_MULTIPLIERS = [a for a in range(SPLIT_BLOCK * 3 // 10, SPLIT_BLOCK * 7 // 10) if math.gcd(a, SPLIT_BLOCK) == 1]


def _mix(x):
    """splitmix64's finaliser on a uint64 array: a seeded hash of each value."""
    import numpy as np

    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(_M1)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(_M2)
    return x ^ (x >> np.uint64(31))


class Splitter:
    """Split of each row (0 train, 1 validation, 2 test) from its class and its ordinal within the class."""

    def __init__(self, seed: int, validation_fraction: float, test_fraction: float):
        import numpy as np

        self.seed = _mix(np.array([seed & (2**64 - 1)], dtype=np.uint64))[0]
        self.train_slots = round(SPLIT_BLOCK * (1 - validation_fraction - test_fraction))
        self.validation_slots = round(SPLIT_BLOCK * validation_fraction)
        self.seen = [0, 0]  # rows of class 0 and class 1 so far

    def assign(self, labels):
        import numpy as np

        ordinal = np.empty(len(labels), dtype=np.uint64)
        for c in (0, 1):
            rows = labels == c
            count = int(rows.sum())
            ordinal[rows] = np.arange(self.seen[c], self.seen[c] + count, dtype=np.uint64)
            self.seen[c] += count
        block = ordinal // np.uint64(SPLIT_BLOCK)
        slot = ordinal % np.uint64(SPLIT_BLOCK)
        key = _mix((block << np.uint64(1)) | labels.astype(np.uint64)) ^ self.seed
        key = _mix(key)
        multiplier = np.asarray(_MULTIPLIERS, dtype=np.uint64)[key % np.uint64(len(_MULTIPLIERS))]
        offset = (key >> np.uint64(20)) % np.uint64(SPLIT_BLOCK)
        position = (multiplier * slot + offset) % np.uint64(SPLIT_BLOCK)
        split = np.full(len(labels), 2, dtype=np.int8)
        split[position < np.uint64(self.train_slots + self.validation_slots)] = 1
        split[position < np.uint64(self.train_slots)] = 0
        return split


# ---- the baseline: running statistics over every training row, in fixed blocks ----------------------


class Baseline:
    """Model Monitor statistics of the training split's raw features, fed chunk by chunk.

    Rows are summed in blocks of STATS_BLOCK_ROWS training rows whatever the chunks are, so the sums,
    and everything derived from them, are the same bits for any read block size."""

    def __init__(self, numeric: list, categorical: list, edges: dict):
        self.features = [FeatureStatistics(c, "numeric", edges[c]) for c in numeric]
        self.features += [FeatureStatistics(c, "string") for c in categorical]
        self.pending: list = [[] for _ in self.features]
        self.pending_rows = 0
        self.rows = 0

    def add(self, columns: list) -> None:
        """One chunk of training rows: a numpy array per feature (float64 with NaN, or object with None)."""
        self.rows += len(columns[0]) if columns else 0
        for parts, values in zip(self.pending, columns):
            parts.append(values)
        self.pending_rows += len(columns[0]) if columns else 0
        if self.pending_rows >= STATS_BLOCK_ROWS:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        import numpy as np
        import pandas as pd

        for feature, parts in zip(self.features, self.pending):
            if not parts:
                continue
            values = np.concatenate(parts) if len(parts) > 1 else parts[0]
            start = 0
            while len(values) - start >= STATS_BLOCK_ROWS or (final and start < len(values)):
                feature.add(pd.Series(values[start : start + STATS_BLOCK_ROWS], copy=False))
                start += STATS_BLOCK_ROWS
            parts[:] = [values[start:]] if start < len(values) else []
        self.pending_rows = len(self.pending[0][0]) if self.pending and self.pending[0] else 0

    def documents(self) -> tuple[dict, dict]:
        if self.pending_rows:
            self._flush(final=True)
        return baseline_documents(self.features, self.rows)


# ---- outputs: written as the rows stream, removed whole if the run fails ---------------------------


class Outputs:
    """The files this run writes, and the directories it had to create: on failure, all removed."""

    def __init__(self):
        self.files: list = []
        self.created: list = []
        self.writers: list = []  # SplitWriters whose thread must stop before the files go

    def path(self, directory: str, name: str) -> str:
        missing = []
        d = os.path.abspath(directory)
        while not os.path.exists(d):
            missing.append(d)
            d = os.path.dirname(d)
        os.makedirs(directory, exist_ok=True)
        self.created += reversed(missing)
        path = os.path.join(directory, name)
        self.files.append(path)
        return path

    def discard(self) -> None:
        for path in self.files:
            if os.path.exists(path):
                os.unlink(path)
        for d in reversed(self.created):
            try:
                os.rmdir(d)
            except OSError:
                pass


class SplitWriter:
    """train.csv / validation.csv / test.csv: label first, then the encoded features, with a header.

    Fields are written as text already (the input's own text for numbers), or whole rows as the input's
    own bytes (write_lines): nothing is formatted again."""

    def __init__(self, outputs: Outputs, args, encoded_columns: list):
        import pyarrow as pa
        import pyarrow.csv as pcsv

        self.handles, self.writers, self.rows = [], [], [0, 0, 0]
        names = ["label"] + [f"c{i}" for i in range(len(encoded_columns))]
        self.schema = pa.schema([(n, pa.string()) for n in names])
        options = pcsv.WriteOptions(include_header=False, quoting_style="none")
        for name in ("train", "validation", "test"):
            handle = open(outputs.path(getattr(args, f"{name}_dir"), f"{name}.csv"), "wb")  # noqa: SIM115
            handle.write((",".join(["label", *encoded_columns]) + "\n").encode())
            self.handles.append(handle)
            self.writers.append(pcsv.CSVWriter(handle, self.schema, write_options=options))
        outputs.writers.append(self)

        # Filtering and formatting run on a thread of their own (pyarrow releases the GIL meanwhile), in order,
        # while the main thread parses the next block; a few blocks wait at most.
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._drain, name="split-writer", daemon=True)
        self.thread.start()

    def write(self, split, columns: list) -> None:
        import pyarrow as pa

        counts = [int((split == which).sum()) for which in range(3)]
        for which in range(3):
            self.rows[which] += counts[which]
        if self.failure is not None:
            raise self.failure
        self.queue.put((split, pa.record_batch(columns, schema=self.schema), counts))

    def write_lines(self, split, labels, lines, target_first: bool, gaps, filled: list) -> None:
        """Rows written as their own bytes, the target's character replaced by the label (see _relabelled),
        but the rows `gaps` (positions in the block), written as `filled`."""
        counts = [int((split == which).sum()) for which in range(3)]
        for which in range(3):
            self.rows[which] += counts[which]
        if self.failure is not None:
            raise self.failure
        self.queue.put((split, (lines, labels, target_first, gaps, filled), counts))

    def _drain(self) -> None:
        import pyarrow as pa

        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.failure is not None:
                continue
            split, batch, counts = item
            try:
                for which, writer in enumerate(self.writers):
                    if not counts[which]:
                        continue
                    every = counts[which] == len(split)
                    if isinstance(batch, tuple):  # lines: the CSV writer writes each batch at once, so they interleave
                        self.handles[which].write(_split_lines(split, which, every, *batch))
                    else:
                        writer.write_batch(batch if every else batch.filter(pa.array(split == which)))
            except BaseException as exc:  # raised again on the main thread
                self.failure = exc

    def abort(self) -> None:
        """Stop the thread and close the files (a failed run removes them)."""
        if self.thread.is_alive():
            self.failure = self.failure or RuntimeError("aborted")
            self.queue.put(None)
            self.thread.join()
        for handle in self.handles:
            handle.close()

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        for writer, handle in zip(self.writers, self.handles):
            writer.close()
            handle.close()
        if self.failure is not None:
            raise self.failure


# ---- the pass over the data -------------------------------------------------------------------------


class Chunk:
    """One block of rows, parsed: the target's text, numeric features as float64 and as their trimmed
    text, categorical features as trimmed text."""

    def __init__(self, first_row, rows, target, numbers, tokens, categories, lines=None):
        self.first_row, self.rows = first_row, rows
        self.target, self.numbers, self.tokens, self.categories = target, numbers, tokens, categories
        # (the rows' own bytes, rows with a missing number) when they are written as they are (see
        # Preprocess._line_values)
        self.lines = lines
        self.labels = self.split = None


class Preprocess:
    def __init__(self, args, header: list, shown: str, outputs: Outputs):
        self.args, self.header, self.shown, self.outputs = args, header, shown, outputs
        self.categorical = split_list(args.categorical)
        markers = [m for m in split_list(args.missing_values) if m not in DEFAULT_MISSING_MARKERS]
        self.markers = list(DEFAULT_MISSING_MARKERS) + markers
        self.marker_bytes = {m.encode() for m in self.markers}
        self.contract = None
        if args.contract:
            self.contract = ContractCheck(columns_to_check(load_json(args.contract, "contract.json"), with_target=True))
            self.contract.header(header)
        self.target_index = header.index(args.target) if args.target in header else None
        if args.features == "all":
            self.features = [c for c in header if c != args.target]
        else:
            self.features = split_list(args.features)
        self.numeric = [c for c in self.features if c not in self.categorical]
        # Rows can go to the splits as their own bytes when the features are every other column, in order,
        # all numeric, and the target is the first or the last column (it is replaced by the label).
        self.target_first = None
        if (
            COPY_LINES
            and self.target_index in (0, len(header) - 1)
            and self.numeric == [c for c in header if c != args.target]
        ):
            self.target_first = self.target_index == 0
        self.rows = 0
        self.missing_target = 0
        self.missing_target_lines: list = []
        self.classes: set = set()
        self.too_many_classes = False
        self.number_errors: dict = {}  # column -> (line, value): the first text in a numeric column
        self.has_value = dict.fromkeys(self.numeric, False)  # a column with no value at all fails
        self.positive = args.positive_class or None
        self.pending: list = []
        self.pending_bytes = 0
        self.spill = None
        self.splitter = Splitter(args.seed, args.validation_fraction, args.test_fraction)
        self.fit_chunks: list = []
        self.fit_train_rows = 0
        self.transform = None
        self.baseline = None
        self.writer = None
        self.label_counts = [0, 0]

    # -- reading -----------------------------------------------------------------------------------

    def header_problem(self) -> str | None:
        args, header, shown = self.args, self.header, self.shown
        if args.target not in header:
            listed = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
            return f"target column '{args.target}' not found in {shown} (columns: {listed})"
        for c in self.features:
            if c not in header:
                return f"feature column '{c}' not found in {shown}"
        if args.target in self.features:
            return f"target column '{args.target}' is also listed as a feature"
        for c in self.categorical:
            if c not in self.features:
                return f"categorical column '{c}' is not one of the feature columns"
        if not self.features:
            return f"{shown} has no feature column besides the target '{args.target}'"
        return None

    def batches(self, stream):
        """Record batches of the CSV after its header, every column as text (missing markers as nulls)."""
        import pyarrow.csv as pcsv

        names = [f"c{i}" for i in range(len(self.header))]
        if not stream.peek(1):
            return  # a header and no row
        reader = pcsv.open_csv(
            stream,
            read_options=pcsv.ReadOptions(column_names=names, block_size=self.args.chunk_bytes),
            convert_options=self._convert_options({}),
        )
        yield from reader

    def parsed_batches(self, stream):
        """(batch, values) for every block, the values (numbers cast, text trimmed) computed on a thread of
        their own one or two blocks ahead of the main thread (pyarrow releases the GIL meanwhile)."""
        return _prefetched(self._blocks(stream), "csv-parser")

    def _blocks(self, stream):
        """(batch, values) of every block: its lines as they are when the block's rows can be copied to the
        splits (see _line_values), else its columns as text."""
        if self.target_first is None:
            for batch in self.batches(stream):
                yield batch, self._values(batch)
            return
        # The bytes are read (and hashed) on a thread of their own while this one parses.
        pieces = _prefetched(_pieces(stream, self.args.chunk_bytes), "csv-reader")
        try:
            rest = b""
            # After a block that cannot be copied, the next 1, 2, 4, ... blocks are not tried (a target of
            # several characters, or a gap in every block, would have every block parsed twice).
            skip, backoff = 0, 1
            while True:
                data = next(pieces, b"")
                text = rest + data if rest else data
                if not text:
                    return
                cut = text.rfind(b"\n") + 1 if data else len(text)
                if cut == 0:
                    rest = text
                    break  # a row longer than a block: the text reader fails on it as it always has
                block, rest = text[:cut], text[cut:]
                block = block if block.endswith(b"\n") else block + b"\n"
                item = self._line_block(block) if not skip else None
                if item is not None:
                    backoff = 1
                elif skip:
                    skip -= 1
                else:
                    skip, backoff = backoff, min(2 * backoff, MAX_SKIPPED_BLOCKS)
                item = item or self._text_block(block)
                if item is None:
                    rest = block + rest
                    break
                yield item
            # A block the reader cannot parse alone: the text reader from there on reports the problem (its
            # messages count no rows, so they do not depend on where it starts).
            for batch in self.batches(io.BufferedReader(_Chained(rest, pieces), 1 << 20)):
                yield batch, self._values(batch)
        finally:
            pieces.close()

    def _line_block(self, block: bytes):
        """(batch, values) of one block of whole lines kept as lines, or None if its rows cannot be copied."""
        import pyarrow as pa

        lines = _lines(block)
        if lines is None:
            return None
        batch = pa.record_batch([lines], names=[LINES])
        values = self._line_values(batch)
        return None if values is None else (batch, values)

    def _text_block(self, block: bytes):
        """(batch, values) of one block of whole lines as text, or None if it does not parse as a table alone."""
        import pyarrow as pa
        import pyarrow.csv as pcsv

        try:
            table = pcsv.read_csv(
                pa.BufferReader(block),
                read_options=self._read_options(len(block)),
                convert_options=self._convert_options({}),
            )
        except pa.ArrowInvalid:
            return None
        batch = table.combine_chunks().to_batches()[0] if table.num_rows else None
        if batch is None:
            return None
        return batch, self._values(batch)

    def _read_options(self, block_bytes: int, pieces: int = 1):
        """Options to read one block: whole, or cut in `pieces` parsed in parallel by Arrow's pool (the
        values are the same; a row longer than a piece fails the read, so pieces are MIN_PIECE_BYTES at
        least)."""
        import pyarrow.csv as pcsv

        names = [f"c{i}" for i in range(len(self.header))]
        if pieces > 1:
            return pcsv.ReadOptions(column_names=names, block_size=max(block_bytes // pieces + 1, MIN_PIECE_BYTES))
        return pcsv.ReadOptions(column_names=names, block_size=max(block_bytes + 1, 1 << 20), use_threads=False)

    def _convert_options(self, types: dict):
        import pyarrow as pa
        import pyarrow.csv as pcsv

        names = [f"c{i}" for i in range(len(self.header))]
        return pcsv.ConvertOptions(
            column_types={n: types.get(n, pa.string()) for n in names},
            null_values=self.markers,
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        )

    def _line_values(self, batch):
        """The values of a block whose rows go to the splits as their own bytes, or None if they do not: no
        quote, space or control character (no text to trim or unquote), a one-character target (the label
        takes its place), one row per line, few rows with a missing number (those are formatted, the
        median in the gaps). The lines come as (lines, rows with a gap)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.csv as pcsv

        lines = batch.column(0)
        ends = np.frombuffer(lines.buffers()[1], dtype=np.int64)[[lines.offset, lines.offset + len(lines)]]
        data = lines.buffers()[2].slice(int(ends[0]), int(ends[1] - ends[0]))
        try:
            table = pcsv.read_csv(
                pa.BufferReader(data),
                # In a piece per thread of Arrow's pool, at most 4: a row longer than a piece sends the
                # block to the text reader, which reads it whole.
                read_options=self._read_options(data.size, min(4, pa.cpu_count())),
                convert_options=self._convert_options(
                    {f"c{i}": pa.float64() for i, name in enumerate(self.header) if i != self.target_index}
                ),
            )
        except pa.ArrowInvalid:
            return None
        if table.num_rows != len(lines):
            return None
        target = table.column(self.target_index).combine_chunks()
        if target.null_count:
            return None
        # No target is empty (that is missing), so n of them in n bytes are one character each.
        ends = np.frombuffer(target.buffers()[1], dtype=np.int32)[[target.offset, target.offset + len(target)]]
        if ends[1] - ends[0] != len(target):
            return None
        numbers, gaps = {}, None
        for i, name in enumerate(self.header):
            if i != self.target_index:
                column = table.column(i).combine_chunks()
                if column.null_count:
                    missing = column.is_null().to_numpy(zero_copy_only=False)
                    gaps = missing if gaps is None else gaps | missing
                numbers[name] = column.to_numpy(zero_copy_only=False)
        gap_rows = np.flatnonzero(gaps) if gaps is not None else np.zeros(0, dtype=np.int64)
        if len(gap_rows) * MAX_GAP_SHARE > len(lines):
            return None  # rows with a missing number are formatted one by one: only a few per block
        return target, numbers, {}, {}, {}, {}, (lines, gap_rows)

    def _values(self, batch):
        """(target, numbers, tokens, categories, contract columns, first non-number per column, lines) of a
        block."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if batch.schema.names == [LINES]:
            values = self._line_values(batch)
            if values is None:
                raise RuntimeError("a block of copied lines no longer parses")  # the same bytes parsed before
            return values
        index = {name: i for i, name in enumerate(self.header)}
        target = pc.utf8_trim_whitespace(batch.column(self.target_index))
        numbers, tokens, contract_columns, bad_values = {}, {}, {}, {}
        for name in self.numeric:
            text = batch.column(index[name])
            try:
                values = pc.cast(text, pa.float64())
            except pa.ArrowInvalid:
                # Whitespace, a marker written with spaces, or text: trim, then find what is not a number.
                text = pc.utf8_trim_whitespace(text)
                text = pc.if_else(pc.is_in(text, value_set=pa.array(self.markers)), pa.scalar(None, pa.string()), text)
                values, bad = _to_numbers(text)
                if bad is not None:
                    bad_values[name] = (bad, text[bad].as_py())
                    contract_columns[name] = text
            numbers[name] = values.to_numpy(zero_copy_only=False)
            tokens[name] = text
        categories = {name: pc.utf8_trim_whitespace(batch.column(index[name])) for name in self.categorical}
        return target, numbers, tokens, categories, contract_columns, bad_values, None

    def parse(self, batch, first_row: int, record: bool, values=None) -> Chunk:
        """The chunk's values; with `record`, what the final checks need (errors, classes, contract)."""
        target, numbers, tokens, categories, contract_columns, bad_values, lines = values or self._values(batch)
        chunk = Chunk(first_row, batch.num_rows, target, numbers, tokens, categories, lines)
        if record:
            for name, (bad, value) in bad_values.items():
                if name not in self.number_errors:
                    self.number_errors[name] = (first_row + bad + 2, value)
            self._record(batch, chunk, contract_columns, {name: i for i, name in enumerate(self.header)})
        return chunk

    def _record(self, batch, chunk, contract_columns, index) -> None:
        import numpy as np
        import pyarrow.compute as pc

        missing = chunk.target.is_null().to_numpy(zero_copy_only=False)
        if missing.any():
            self.missing_target += int(missing.sum())
            room = 3 - len(self.missing_target_lines)
            if room > 0:
                self.missing_target_lines += [chunk.first_row + int(i) + 2 for i in np.flatnonzero(missing)[:room]]
        if not self.too_many_classes:
            self.classes.update(v for v in pc.unique(chunk.target.drop_null()).to_pylist())
            self.too_many_classes = len(self.classes) > MAX_CLASSES_LISTED
        for name, values in chunk.numbers.items():
            if not self.has_value[name]:
                self.has_value[name] = not np.isnan(values).all()
        if self.contract is not None:
            self.contract.add(self._contract_frame(batch, chunk, contract_columns, index))

    def _contract_frame(self, batch, chunk, contract_columns, index):
        """The chunk as the contract check reads a table: numbers as float64, text where it is not."""
        import pandas as pd
        import pyarrow as pa
        import pyarrow.compute as pc

        frame = {}
        for name in self.contract.rules:
            if name not in index:
                continue
            if name in contract_columns:
                frame[name] = contract_columns[name].to_pandas()
            elif name in chunk.numbers:
                frame[name] = chunk.numbers[name]
            elif name == self.args.target:
                frame[name] = chunk.target.to_pandas()
            elif name in chunk.categories:
                frame[name] = chunk.categories[name].to_pandas()
            else:
                text = pc.utf8_trim_whitespace(batch.column(index[name]))
                kind = self.contract.rules[name].get("type", "number")
                try:
                    frame[name] = text.to_pandas() if kind == "category" else pc.cast(text, pa.float64()).to_pandas()
                except pa.ArrowInvalid:
                    frame[name] = text.to_pandas()
        return pd.DataFrame(frame, index=pd.RangeIndex(chunk.rows))

    # -- processing --------------------------------------------------------------------------------

    def feed(self, batch, values=None) -> None:
        chunk = self.parse(batch, self.rows, record=True, values=values)
        self.rows += chunk.rows
        if len(self.classes) > 2:
            return  # the run fails at the end; keep reading only for the checks' counts
        if self.positive is None:
            if len(self.classes) < 2:
                self._hold(batch, chunk.first_row)
                return
            self.positive = sorted(self.classes, key=_class_order)[1]
            for held, first_row in self._held():
                self._label(self.parse(held, first_row, record=False))
        self._label(chunk)

    def _hold(self, batch, first_row: int) -> None:
        """Rows seen while only one class has been: which is the positive one is not known yet."""
        import pyarrow as pa

        if self.spill is None and self.pending_bytes + batch.nbytes > PENDING_BYTES:
            self.spill = (tempfile.TemporaryFile(), [])  # noqa: SIM115 (closed when replayed)
        if self.spill is not None:
            # One IPC stream per block: blocks kept as lines and blocks kept as columns differ in schema.
            handle, held = self.spill
            held.append((handle.tell(), first_row))
            with pa.ipc.new_stream(handle, batch.schema) as writer:
                writer.write_batch(batch)
        else:
            self.pending.append((batch, first_row))
            self.pending_bytes += batch.nbytes

    def _held(self):
        import pyarrow as pa

        yield from self.pending
        self.pending = []
        if self.spill is not None:
            handle, held = self.spill
            for offset, first_row in held:
                handle.seek(offset)
                yield pa.ipc.open_stream(handle).read_next_batch(), first_row
            handle.close()
            self.spill = None

    def _label(self, chunk: Chunk) -> None:
        import numpy as np
        import pyarrow.compute as pc

        chunk.labels = pc.fill_null(pc.equal(chunk.target, self.positive), False).to_numpy(zero_copy_only=False)
        chunk.labels = chunk.labels.astype(np.int8)
        positives = int(chunk.labels.sum())
        self.label_counts[1] += positives
        self.label_counts[0] += chunk.rows - positives
        chunk.split = self.splitter.assign(chunk.labels)
        if self.transform is None:
            self.fit_chunks.append(chunk)
            self.fit_train_rows += int((chunk.split == 0).sum())
            if self.fit_train_rows >= self.args.fit_rows:
                self._fit()
        else:
            self._emit(chunk)

    def _fit(self) -> None:
        """Fit the transform and the baseline's buckets on the first --fit-rows training rows; then write."""
        import numpy as np
        import pandas as pd

        frame = {}
        for name in self.numeric:
            frame[name] = np.concatenate([c.numbers[name][c.split == 0] for c in self.fit_chunks])
        for name in self.categorical:
            frame[name] = np.concatenate(
                [c.categories[name].to_numpy(zero_copy_only=False)[c.split == 0] for c in self.fit_chunks]
            )
        frame = pd.DataFrame(frame).iloc[: self.args.fit_rows]
        self.transform = FeatureTransform.fit(frame, self.numeric, self.categorical)
        edges = {name: histogram_edges(frame[name].to_numpy()) for name in self.numeric}
        self.baseline = Baseline(self.numeric, self.categorical, edges)
        self.fill = {name: f"{float(np.float32(self.transform.medians[name])):.8g}" for name in self.numeric}
        self.fill_bytes = {name: text.encode() for name, text in self.fill.items()}
        self.writer = SplitWriter(self.outputs, self.args, self.transform.encoded_columns)
        chunks, self.fit_chunks = self.fit_chunks, []
        for chunk in chunks:
            self._emit(chunk)

    def _emit(self, chunk: Chunk) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        train = chunk.split == 0
        if train.any():
            columns = [chunk.numbers[name][train] for name in self.numeric]
            columns += [chunk.categories[name].to_numpy(zero_copy_only=False)[train] for name in self.categorical]
            self.baseline.add(columns)
        if chunk.lines is not None:
            lines, gaps = chunk.lines
            filled = [self._filled(lines[int(row)].as_py(), int(chunk.labels[row])) for row in gaps]
            self.writer.write_lines(chunk.split, chunk.labels, lines, self.target_first, gaps, filled)
            return
        labels = pc.if_else(pa.array(chunk.labels == 1), "1", "0")
        columns = [labels] + [pc.fill_null(chunk.tokens[name], self.fill[name]) for name in self.numeric]
        for name in self.categorical:
            values = pc.fill_null(chunk.categories[name], self.transform.modes[name])
            for category in self.transform.categories[name]:
                columns.append(pc.if_else(pc.equal(values, category), "1", "0"))
        self.writer.write(chunk.split, columns)

    def _filled(self, line: bytes, label: int) -> bytes:
        """A copied line with a missing number written as the text path writes it: the label, then each
        number's text or, for a missing-value marker, the training median."""
        fields = line[:-1].split(b",")
        fields = fields[1:] if self.target_first else fields[:-1]
        out = [b"%d" % label]
        for name, text in zip(self.numeric, fields):
            out.append(self.fill_bytes[name] if text in self.marker_bytes else text)
        return b",".join(out) + b"\n"

    # -- the end -----------------------------------------------------------------------------------

    def finish(self) -> None:
        """The checks that need every row, in the order the step has always reported them."""
        args, shown = self.args, self.shown
        if self.contract is not None and self.contract.violations():
            raise DataError(f"{FAILURE}: {self.contract.message(shown)}")
        if not self.rows:
            raise DataError(f"input {shown} has a header but no data rows")
        if self.missing_target:
            lines = ", ".join(str(n) for n in self.missing_target_lines)
            raise DataError(
                f"target column '{args.target}' has {self.missing_target} missing value(s) "
                f"(line {lines}{', ...' if self.missing_target > 3 else ''})"
            )
        classes = sorted(self.classes, key=_class_order)
        if len(classes) == 1:
            raise DataError(
                f"target column '{args.target}' has a single class ({classes[0]}): binary classification needs two"
            )
        if len(classes) > 2:
            listed = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
            count = f"more than {MAX_CLASSES_LISTED}" if self.too_many_classes else str(len(classes))
            raise DataError(
                f"target column '{args.target}' has {count} classes ({listed}): binary classification needs exactly two"
            )
        if self.positive not in classes:
            raise DataError(
                f"positive class '{self.positive}' is not a value of target column '{args.target}' "
                f"({', '.join(classes)})"
            )
        smallest = min(self.label_counts)
        if smallest < MIN_ROWS_PER_CLASS:
            raise DataError(
                f"target column '{args.target}' has only {smallest} row(s) of one class: need at least "
                f"{MIN_ROWS_PER_CLASS} per class to split train/validation/test"
            )
        for name in self.numeric:
            if name in self.number_errors:
                line, value = self.number_errors[name]
                raise DataError(
                    f"column '{name}' is not numeric: value {value!r} on line {line} "
                    "(list it under training.categorical if it is a category)"
                )
            if not self.has_value[name]:
                raise DataError(f"column '{name}' has no values (every row is missing)")
        if self.transform is None:
            self._fit()
        self.writer.close()


def _lines(block: bytes):
    """The block's lines (a binary array over its bytes, each with its newline), or None when a byte other
    than the newlines is a quote, a space or a control character: such a block is parsed as text."""
    import numpy as np
    import pyarrow as pa

    data = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(data <= ord('"'))  # controls, space, '!' and the quote: only newlines may be there
    if not len(ends) or (data[ends] != ord("\n")).any():
        return None
    offsets = np.empty(len(ends) + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = ends + 1
    return pa.Array.from_buffers(pa.large_binary(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(block)])


def _split_lines(split, which: int, every: bool, lines, labels, target_first: bool, gaps, filled: list):
    """The bytes of split `which` of a block of copied lines (see SplitWriter.write_lines)."""
    import numpy as np
    import pyarrow as pa

    if not every:
        chosen = split == which
        lines, labels = lines.filter(pa.array(chosen)), labels[chosen]
    out = _relabelled(lines, labels, target_first)
    mine = split[gaps] == which if len(gaps) else np.zeros(0, dtype=bool)
    if not mine.any():
        return out
    # The lines with a gap, by their place in this split: the bytes between them are copied, they are not.
    rows = gaps[mine] if every else np.cumsum(chosen)[gaps[mine]] - 1
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    offsets = offsets - offsets[0]
    parts, copied = [], 0
    for row, text in zip(rows, [filled[i] for i in np.flatnonzero(mine)]):
        parts += [out[copied : offsets[row]], text]
        copied = offsets[row + 1]
    parts.append(out[copied:])
    return b"".join(parts)


def _relabelled(lines, labels, target_first: bool):
    """The lines' bytes with the one-character target replaced by the label (0 or 1) and moved first:
    `target,features` keeps its place, `features,target` becomes `label,features`. Byte for byte what
    writing the label and each number's text as read gives."""
    import numpy as np

    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    data = np.frombuffer(lines.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    starts = offsets[:-1] - offsets[0]
    if target_first:
        out = data.copy()
    else:
        # `f1,...,fn,t\n` shifted right by two is `..f1,...,fn,` with `t\n` at the next line's start:
        # the label and a comma go there, a newline over each line's last comma.
        out = np.empty_like(data)
        out[2:] = data[:-2]
        out[starts + 1] = ord(",")
        out[offsets[1:] - offsets[0] - 1] = ord("\n")
    out[starts] = labels + ord("0")
    return out


def _pieces(stream, size: int):
    while data := stream.read(size):
        yield data


class _Chained(io.RawIOBase):
    """Bytes already read, then the rest of the pieces (bytes) of a stream."""

    def __init__(self, head: bytes, pieces):
        self.head, self.pieces = memoryview(head), pieces

    def readable(self):
        return True

    def readinto(self, buffer):
        if not self.head:
            self.head = memoryview(next(self.pieces, b""))
        n = min(len(buffer), len(self.head))
        buffer[:n] = self.head[:n]
        self.head = self.head[n:]
        return n


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


_END = object()


def _prefetched(items, name: str, depth: int = 2):
    """The items of `items`, produced on a thread of their own up to `depth` ahead of the caller (pyarrow,
    hashing and file reads release the GIL meanwhile); an exception there is raised here."""
    ahead: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # raised again on the consuming thread
            put(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = ahead.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def _to_numbers(text):
    """(float64 array, position of the first value that is not a number or None) of trimmed text."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(text, pa.float64()), None
    except pa.ArrowInvalid:
        pass
    values = pd.to_numeric(pd.Series(text.to_pandas()), errors="coerce")
    bad = values.isna().to_numpy() & text.is_valid().to_numpy(zero_copy_only=False)
    return pa.array(values.to_numpy(dtype=np.float64), from_pandas=True), int(np.flatnonzero(bad)[0])


def run(args) -> dict:
    outputs = Outputs()
    try:
        return _run(args, outputs)
    except BaseException:
        for writer in outputs.writers:
            writer.abort()
        outputs.discard()
        raise


def _run(args, outputs: Outputs) -> dict:
    import pyarrow as pa

    try:
        snapshot, reader = open_dataset(args.input)
        shown = os.path.basename(snapshot.parts[0].name) if len(snapshot.parts) == 1 else args.input
        with io.BufferedReader(reader, 1 << 20) as stream:
            stream.readline()  # the header (the parts reader names its columns)
            header = list(reader.columns)
            duplicated = sorted({c for c in header if header.count(c) > 1})
            if duplicated:
                raise DataError(f"duplicate column name '{duplicated[0]}' in {shown}")
            step = Preprocess(args, header, shown, outputs)
            problem = step.header_problem()
            if problem:
                # What the step has always reported first: the contract's findings, then an empty table.
                if step.contract is not None:
                    _contract_only(step, stream)
                elif not any(line.strip() for line in _first_lines(stream)):
                    raise DataError(f"input {shown} has a header but no data rows")
                raise DataError(problem)
            try:
                for batch, values in step.parsed_batches(stream):
                    step.feed(batch, values)
            except pa.ArrowInvalid as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise DataError(f"input {shown} is not a readable CSV: {first}") from None
            except UnicodeDecodeError as exc:
                raise DataError(f"input {shown} is not a readable CSV: {exc}") from None
    except SnapshotError as exc:
        raise DataError(str(exc)) from None
    step.finish()
    transform = step.transform
    # The model directory carries the transform so inference encodes raw rows exactly as training did.
    write_json(args.train_dir, "preprocessing.json", transform.to_json())
    statistics, constraints = step.baseline.documents()
    write_json(args.baseline_dir, "statistics.json", statistics)
    write_json(args.baseline_dir, "constraints.json", constraints)

    recorded = snapshot.record()
    report = {
        "dataset": {
            "uri": args.dataset_uri or args.input,
            # one part: its file's sha256; several: a digest of every part's name and sha256
            "sha256": snapshot.parts[0].sha256 if len(snapshot.parts) == 1 else recorded["sha256"],
            "rows": step.rows,
            "part_count": len(recorded["parts"]),
            "parts": recorded["parts"],
            "skipped": recorded["skipped"],
            "target": args.target,
            "positive_class": step.positive,
            "positive_rows": step.label_counts[1],
        },
        "features": {
            "numeric": step.numeric,
            "categorical": step.categorical,
            "encoded": transform.encoded_columns,
        },
        "splits": dict(zip(("train", "validation", "test"), step.writer.rows)),
    }
    write_json(args.report_dir, "preprocess.json", report)
    if args.snapshot_dir:
        write_json(args.snapshot_dir, "snapshot.json", dict(recorded, sha256=report["dataset"]["sha256"]))
    return report


def _first_lines(stream, limit: int = 1000):
    for _ in range(limit):
        line = stream.readline()
        if not line:
            return
        yield line


def _contract_only(step: Preprocess, stream) -> None:
    """Read the table for the contract alone (the header already failed another check)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    index = {name: i for i, name in enumerate(step.header)}
    for batch in step.batches(stream):
        frame = {}
        for name, rule in step.contract.rules.items():
            if name not in index:
                continue
            text = pc.utf8_trim_whitespace(batch.column(index[name]))
            try:
                frame[name] = (
                    text.to_pandas() if rule.get("type") == "category" else pc.cast(text, pa.float64()).to_pandas()
                )
            except pa.ArrowInvalid:
                frame[name] = text.to_pandas()
        import pandas as pd

        step.contract.add(pd.DataFrame(frame, index=pd.RangeIndex(batch.num_rows)))
        step.rows += batch.num_rows
    if step.contract.violations():
        raise DataError(f"{FAILURE}: {step.contract.message(step.shown)}")
    if not step.rows:
        raise DataError(f"input {step.shown} has a header but no data rows")


def main(argv=None) -> int:
    args = parse_args(argv)
    report = run_or_fail(run, args)
    print(
        json.dumps(
            {"rows": report["dataset"]["rows"], "splits": report["splits"], "sha256": report["dataset"]["sha256"]}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
