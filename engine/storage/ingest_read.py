"""Bulk-ingest reader and validator: a folder of Parquet/CSV table files -> canonical pa.Tables.

Sits below the storage layer: it imports only schema.py and errors.py, reads files, converts
every column to the logical type of schema.TABLES (arrow type CANONICAL[type]) and checks
the rules of shared/spec/data-model.md. Nothing here writes anything; a load that fails
raises IngestError(file, row, column, message) before the caller changes a byte.

Every check is vectorised. Only once a check has failed does slow work run, to find the
first offending row (a bisection over slices for casts, a mask search otherwise).

Text (CSV) conventions, beyond the spec:
  * an unquoted empty field is null; a quoted empty field ("") is the empty string for text
    columns, the empty list for list columns, and null for every other type (so is a
    field of blanks);
  * list elements are trimmed and empty elements dropped ("VIP; staff;" -> [VIP, staff]);
  * leading/trailing blanks around numbers, dates, timestamps and bools are tolerated, and
    so are a leading '+' on integers and more than 6 fractional digits on timestamps
    (truncated to microseconds);
  * quoted values may hold newlines (newlines_in_values: correct, a little slower).
Parquet conventions: any integer width/sign for an integer column (range-checked); never a
float (an amount of 12.0 could be dollars, not cents); integers are accepted for text
columns; timestamps need a zone (any unit and zone, converted to UTC us, ns truncated);
a naive timestamp at midnight is accepted for a date column; dictionary columns are decoded.
Both: visits/laybys status is matched case-insensitively and stored lower case.
Row numbers count data records (header excluded, blank lines skipped), 1-based per file.
"""
from __future__ import annotations

import csv
import datetime as dt
import re
import sys
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ..errors import IngestError
from ..model import limits
from ..model.schema import LAYBY_STATUSES, TABLE_NAMES, TABLES, VISIT_STATUSES, Column

CANONICAL = {
    "int64": pa.int64(),
    "int32": pa.int32(),
    "string": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "bool": pa.bool_(),
    "list<string>": pa.list_(pa.string()),
}

# Columns whose values must come from a closed set (matched case-insensitively).
DOMAINS = {
    ("visits", "status"): VISIT_STATUSES,
    ("laybys", "status"): LAYBY_STATUSES,
}

# Tables whose customer_id must name a customer of this load or of the dataset.
REFERENCING_TABLES = ("purchases", "visits", "laybys")

_SUFFIXES = (".parquet", ".csv")
_TRUE_TEXT = ["true", "1"]
_FALSE_TEXT = ["false", "0"]
_INT_TEXT = re.compile(r"\s*[+-]?\d+\s*")

# Letters that NFD does not decompose into base + mark, mapped after lower-casing.
ASCII_FOLD = (
    ("ł", "l"), ("ø", "o"), ("æ", "ae"), ("œ", "oe"), ("ß", "ss"),
    ("đ", "d"), ("ð", "d"), ("þ", "th"), ("ı", "i"),
)
_FOLD_CHARS = re.compile("[" + "".join(a for a, _ in ASCII_FOLD) + "]")


def canonical_schema(table: str) -> pa.Schema:
    """The arrow schema read_folder returns for `table`: every schema column, in order."""
    return pa.schema([pa.field(c.name, CANONICAL[c.type]) for c in TABLES[table]])


# ----------------------------------------------------------------------------- text helpers

def normalize_text(arr):
    """Lower-case and strip accents, vectorised: 'José ÉLODIE Łukasz' -> 'jose elodie lukasz'.

    utf8_lower, NFD, drop combining marks (\\p{Mn}), then fold the few letters NFD leaves
    whole (ł ø æ œ ß đ ð þ ı, see ASCII_FOLD) to ASCII. Nulls stay null.
    """
    if len(arr) == 0 or pc.all(pc.string_is_ascii(arr)).as_py() is not False:
        return pc.ascii_lower(arr)
    out = pc.utf8_lower(arr)
    out = pc.utf8_normalize(out, form="NFD")
    out = pc.replace_substring_regex(out, pattern=r"\p{Mn}+", replacement="")
    if pc.any(pc.match_substring_regex(out, _FOLD_CHARS.pattern)).as_py():
        for src, dst in ASCII_FOLD:
            out = pc.replace_substring(out, pattern=src, replacement=dst)
    return out


def digits_only(arr):
    """Keep only the characters 0-9: '+1 (212) 555-0142' -> '12125550142'. Nulls stay null."""
    return pc.replace_substring_regex(arr, pattern=r"[^0-9]+", replacement="")


# ----------------------------------------------------------------------------- locating

def _first_true(mask) -> int:
    """Index of the first true of a boolean (chunked) array with nulls counted false; -1 if none."""
    return pc.index(pc.fill_null(mask, False), True).as_py()


def _first_failure(arr, convert: Callable) -> int:
    """Index of the first element `convert` rejects; arr as a whole is known to be rejected.

    Bisection over slices: the rejected prefix halves each step, so the total work is about
    one more conversion of arr. Valid because every conversion here is element-wise.
    """
    lo, hi = 0, len(arr)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convert(arr.slice(lo, mid - lo))
        except pa.ArrowInvalid:
            hi = mid
        else:
            lo = mid
    return lo


def _show(value) -> str:
    """A value quoted for an error message, shortened."""
    s = repr(value)
    return s if len(s) <= 60 else s[:57] + "..."


def _cast_or_raise(arr, to: pa.DataType, file: str, col: str, message: str, safe: bool = True):
    """pc.cast, or IngestError at the first element that does not convert ('<message>, got x')."""
    try:
        return pc.cast(arr, to, safe=safe)
    except pa.ArrowInvalid:
        i = _first_failure(arr, lambda a: pc.cast(a, to, safe=safe))
        raise IngestError(file, i + 1, col, f"{message}, got {_show(arr[i].as_py())}") from None


# ----------------------------------------------------------------------------- from text (CSV)

def _tidy(arr):
    """Trimmed text with blank values (a quoted "" or spaces) as null: the slow path of a cast."""
    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def _text_to_int(arr, ltype: str, file: str, col: str):
    try:
        out = pc.cast(arr, pa.int64())
    except pa.ArrowInvalid:
        tidy = pc.replace_substring_regex(_tidy(arr), pattern=r"^\+", replacement="")
        try:
            out = pc.cast(tidy, pa.int64())
        except pa.ArrowInvalid:
            i = _first_failure(tidy, lambda a: pc.cast(a, pa.int64()))
            _int_to(pc.cast(tidy.slice(0, i), pa.int64()), ltype, file, col)   # an earlier range error?
            v = arr[i].as_py()
            what = "integer out of range for int64" if _INT_TEXT.fullmatch(v) else "expected an integer"
            raise IngestError(file, i + 1, col, f"{what}, got {_show(v)}") from None
    return _int_to(out, ltype, file, col)


def _int_to(arr, ltype: str, file: str, col: str):
    """An integer array of any width/sign to CANONICAL[ltype], naming the first value out of range."""
    to = CANONICAL[ltype]
    if arr.type == to:
        return arr
    info = np.iinfo(to.to_pandas_dtype())
    return _cast_or_raise(arr, to, file, col,
                          f"integer out of range for {ltype} ({info.min}..{info.max})")


def _text_to_date(arr, file: str, col: str):
    try:
        return pc.cast(arr, pa.date32())
    except pa.ArrowInvalid:
        return _cast_or_raise(_tidy(arr), pa.date32(), file, col,
                              "expected a date YYYY-MM-DD")


def _text_to_timestamp(arr, file: str, col: str):
    to = CANONICAL["timestamp"]
    try:
        return pc.cast(arr, to)
    except pa.ArrowInvalid:
        pass
    tidy = pc.replace_substring_regex(_tidy(arr), pattern=r"(\.\d{6})\d+", replacement=r"\1")
    try:
        return pc.cast(tidy, to)
    except pa.ArrowInvalid:
        i = _first_failure(tidy, lambda a: pc.cast(a, to))
    v = tidy[i].as_py()
    try:
        pc.cast(pa.array([v]), pa.timestamp("us"))
        what = "timestamp without UTC offset (add 'Z' or e.g. '+02:00')"
    except pa.ArrowInvalid:
        what = "expected an ISO-8601 timestamp with offset, e.g. 2024-01-05T10:00:00Z"
    raise IngestError(file, i + 1, col, f"{what}, got {_show(arr[i].as_py())}")


def _text_to_bool(arr, file: str, col: str):
    tidy = _tidy(pc.ascii_lower(arr))
    yes = pc.is_in(tidy, value_set=pa.array(_TRUE_TEXT))
    no = pc.is_in(tidy, value_set=pa.array(_FALSE_TEXT))
    bad = pc.and_not(pc.is_valid(tidy), pc.or_(yes, no))
    i = _first_true(bad)
    if i >= 0:
        raise IngestError(file, i + 1, col,
                          f"expected a boolean (true/false/1/0), got {_show(arr[i].as_py())}")
    return pc.if_else(pc.is_valid(tidy), yes, pa.scalar(None, pa.bool_()))


def _split_list(chunk: pa.Array) -> pa.Array:
    """';'-separated text to list<string>: elements trimmed, empty ones dropped, null stays null."""
    lists = pc.split_pattern(chunk, pattern=";")
    flat = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    keep = pc.not_equal(flat, "")
    kept_parent = pc.list_parent_indices(lists).filter(keep).to_numpy()
    offsets = np.zeros(len(chunk) + 1, dtype=np.int32)
    np.cumsum(np.bincount(kept_parent, minlength=len(chunk)), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), flat.filter(keep),
                                    type=CANONICAL["list<string>"], mask=pc.is_null(chunk))


def _from_text(arr: pa.ChunkedArray, c: Column, file: str) -> pa.ChunkedArray:
    """A CSV column read as text to CANONICAL[c.type]."""
    if c.type in ("int64", "int32"):
        return _text_to_int(arr, c.type, file, c.name)
    if c.type == "string":
        return arr
    if c.type == "date":
        return _text_to_date(arr, file, c.name)
    if c.type == "timestamp":
        return _text_to_timestamp(arr, file, c.name)
    if c.type == "bool":
        return _text_to_bool(arr, file, c.name)
    if c.type == "list<string>":
        return pa.chunked_array([_split_list(ch) for ch in arr.chunks], CANONICAL[c.type])
    raise AssertionError(c.type)


# ----------------------------------------------------------------------------- from arrow (Parquet)

def _is_text(t: pa.DataType) -> bool:
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t) or getattr(pa.types, "is_string_view", lambda _: False)(t))


def _from_arrow(arr: pa.ChunkedArray, c: Column, file: str) -> pa.ChunkedArray:
    """A typed (Parquet) column to CANONICAL[c.type]; compatible widths/units/zones accepted."""
    to = CANONICAL[c.type]
    t = arr.type
    if pa.types.is_dictionary(t):
        arr, t = arr.cast(t.value_type), t.value_type
    if t == to:
        return arr
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(arr), to)], to)

    def wrong(expected: str):
        return IngestError(file, 0, c.name, f"expected {expected} column, got arrow type {t}")

    if c.type in ("int64", "int32"):
        if not pa.types.is_integer(t):
            raise wrong("an integer")
        return _int_to(arr, c.type, file, c.name)
    if c.type == "string":
        if _is_text(t):
            return _cast_or_raise(arr, to, file, c.name, "invalid UTF-8 text")
        if pa.types.is_integer(t):
            return pc.cast(arr, to)
        raise wrong("a text")
    if c.type == "date":
        if pa.types.is_date(t):
            return _cast_or_raise(arr, to, file, c.name, "date64 value is not a whole day")
        if pa.types.is_timestamp(t) and t.tz is None:
            out = pc.cast(arr, to)
            i = _first_true(pc.not_equal(pc.cast(out, t), arr))
            if i >= 0:
                raise IngestError(file, i + 1, c.name,
                                  f"expected a date, got a timestamp with a time of day: {arr[i]}")
            return out
        raise wrong("a date")
    if c.type == "timestamp":
        if not pa.types.is_timestamp(t):
            raise wrong("a timestamp")
        if t.tz is None:
            raise IngestError(file, 0, c.name,
                              f"timestamp column has no time zone ({t}); store instants as UTC "
                              "(timestamp with tz) so they are not ambiguous")
        if t.unit == "ns":      # finer than us: truncate, cannot overflow
            return pc.cast(arr, to, safe=False)
        return _cast_or_raise(arr, to, file, c.name, "timestamp out of range")
    if c.type == "bool":
        if not pa.types.is_boolean(t):
            raise wrong("a boolean")
        return arr
    if c.type == "list<string>":
        is_list = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
        if not (is_list and (_is_text(t.value_type) or pa.types.is_null(t.value_type))):
            raise wrong("a list of text")
        return _cast_or_raise(arr, to, file, c.name, "invalid UTF-8 text in list")
    raise AssertionError(c.type)


# ----------------------------------------------------------------------------- one file

def _missing_required(table: str, present, file: str) -> None:
    for c in TABLES[table]:
        if c.required and c.name not in present:
            raise IngestError(file, 0, c.name, f"missing required column {c.name!r} in {table}")


# What a Parquet file may decode to before it is read: at least PARQUET_MIN_BUDGET bytes,
# else PARQUET_MAX_RATIO times its size. Real exports decode to a few times their size; a
# file claiming far more (a run-length or dictionary "bomb", or a footer that lies) is
# refused from its metadata, before anything is allocated.
PARQUET_MIN_BUDGET = 128 << 20
PARQUET_MAX_RATIO = 64
_LEAF_BYTES = {"BOOLEAN": 0.125, "INT32": 4, "INT64": 8, "INT96": 12, "FLOAT": 4, "DOUBLE": 8,
               "BYTE_ARRAY": 4, "FIXED_LEN_BYTE_ARRAY": 0}


def _parquet_budget(size: int) -> int:
    return max(PARQUET_MIN_BUDGET, PARQUET_MAX_RATIO * size)


def _too_big(file: str, what: str, claimed: float, size: int) -> IngestError:
    return IngestError(file, 0, "", f"{what} {_mib(claimed)} from a file of {size:,} bytes, more than the "
                                    f"limit of {_mib(_parquet_budget(size))} (at most {PARQUET_MAX_RATIO} times "
                                    f"the file's size, or {_mib(PARQUET_MIN_BUDGET)}); split it into smaller files")


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def _check_parquet_sizes(meta, columns, size: int, file: str) -> None:
    """Refuse a file whose metadata claims more than it can hold or than the budget allows:
    every column chunk must lie inside the file, and the columns read must decode (values,
    offsets, validity, uncompressed text) to at most _parquet_budget(size) bytes."""
    wanted = set(columns)
    rows = 0
    decoded = 0.0
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        if rg.num_rows < 0:
            raise IngestError(file, 0, "", "corrupt Parquet metadata: a row group with a negative row count")
        rows += rg.num_rows
        for j in range(rg.num_columns):
            c = rg.column(j)
            name = c.path_in_schema.split(".")[0]
            if name not in wanted:
                continue
            start = c.dictionary_page_offset if c.has_dictionary_page and c.dictionary_page_offset else c.data_page_offset
            if start is None or start < 0 or c.total_compressed_size < 0 or \
                    start + c.total_compressed_size > size:
                raise IngestError(file, 0, name, "corrupt Parquet metadata: a column chunk claims "
                                                 f"{c.total_compressed_size:,} bytes beyond the file's {size:,}")
            leaf = _LEAF_BYTES.get(c.physical_type, 8)
            decoded += max(c.num_values, 0) * leaf + rg.num_rows / 8
            if c.physical_type in ("BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY"):
                decoded += max(c.total_uncompressed_size, 0)
    if rows != meta.num_rows:
        raise IngestError(file, 0, "", f"corrupt Parquet metadata: {meta.num_rows:,} rows in the footer, "
                                       f"{rows:,} in its row groups")
    if decoded > _parquet_budget(size):
        raise _too_big(file, "its columns would decode to", decoded, size)


def _value_type(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def _packed_text_columns(meta, text_columns) -> list:
    """Text columns with a dictionary chunk stored in under a byte per value: where a few
    dictionary entries repeated by run-length indices could expand without bound. They are
    read as dictionaries (cheap for so few distinct values) and measured before decoding;
    other text decodes to about its uncompressed size, which the footer check counted."""
    out = set()
    wanted = set(text_columns)
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        for j in range(rg.num_columns):
            c = rg.column(j)
            name = c.path_in_schema.split(".")[0]
            if name in wanted and c.has_dictionary_page and c.total_uncompressed_size < c.num_values:
                out.add(name)
    return sorted(out)


def _check_dictionary_expansion(batch, size: int, file: str, so_far: list, skip=()) -> None:
    """Dictionary-encoded text expands when decoded: a short dictionary value repeated by
    run-length indices can decode to gigabytes. Measure the expansion (so_far[0]: of the
    batches before) before it happens (columns in `skip` stay dictionaries: never decoded)."""
    for name, col in zip(batch.schema.names, batch.columns):
        if not pa.types.is_dictionary(col.type) or name in skip:
            continue
        for chunk in getattr(col, "chunks", [col]):
            lengths = pc.binary_length(chunk.dictionary)
            taken = pc.sum(pc.take(lengths, chunk.indices)).as_py() if len(chunk) else 0
            so_far[0] += (taken or 0) + 4 * len(chunk)
    if so_far[0] > _parquet_budget(size):
        raise _too_big(file, "its text would decode to", so_far[0], size)


def _open_parquet(path: Path, table: str, file: str):
    """(ParquetFile, the schema columns it has); IngestError for an unreadable file, a
    repeated column or a missing required one."""
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError) as e:
        raise IngestError(file, 0, "", f"not a readable Parquet file: {e}") from None
    present = [c.name for c in TABLES[table] if c.name in schema.names]
    for name in present:
        if schema.names.count(name) > 1:
            raise IngestError(file, 0, name, f"column {name!r} appears more than once")
    _missing_required(table, present, file)
    return pf, present


def _parquet_batches(path: Path, table: str, file: str, batch_rows: int, columns=None, row_groups=None,
                     coded=()):
    """(raw columns, rows) per batch of a Parquet file (of its row groups [a, b) only, when
    row_groups = (a, b)); text columns in `coded` come as dictionary arrays."""
    pf, present = _open_parquet(path, table, file)
    if columns is not None:
        present = [c for c in present if c in columns]
    size = path.stat().st_size
    _check_parquet_sizes(pf.metadata, present, size, file)     # before anything is decoded
    text = [n for n in present if _is_text(_value_type(pf.schema_arrow.field(n).type))]
    packed = _packed_text_columns(pf.metadata, text)
    keep = [n for n in text if n in coded]
    packed = sorted(set(packed) | set(keep))
    if packed:
        try:
            pf = pq.ParquetFile(path, read_dictionary=packed)
        except (pa.ArrowException, OSError) as e:
            raise IngestError(file, 0, "", f"not a readable Parquet file: {e}") from None
    expanded = [0]
    if pf.metadata.num_rows == 0 or not present:
        yield {name: pa.chunked_array([], pf.schema_arrow.field(name).type) for name in present}, \
            pf.metadata.num_rows
        return
    try:
        groups = list(range(*row_groups)) if row_groups is not None else None
        for batch in pf.iter_batches(batch_size=batch_rows, columns=present, use_threads=True, row_groups=groups):
            _check_dictionary_expansion(batch, size, file, expanded, skip=keep)  # columns decoded later
            yield {name: pa.chunked_array([batch.column(name)]) for name in present}, batch.num_rows
    except (pa.ArrowException, OSError) as e:
        raise IngestError(file, 0, "", f"cannot read Parquet file: {e}") from None


def _csv_header(path: Path, file: str) -> list:
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
            header = next(csv.reader(f), None)
    except (UnicodeDecodeError, csv.Error) as e:
        raise IngestError(file, 0, "", f"cannot read the CSV header: {e}") from None
    if not header:
        raise IngestError(file, 0, "", "empty CSV file: expected a header row of column names")
    return header


def _csv_options(columns, as_type: pa.DataType):
    convert = pcsv.ConvertOptions(
        column_types={n: as_type for n in columns}, include_columns=list(columns),
        strings_can_be_null=True, quoted_strings_can_be_null=False, null_values=[""])
    return pcsv.ParseOptions(newlines_in_values=True), convert


def _csv_read_error(path: Path, present, file: str, err: Exception) -> IngestError:
    """Slow path after pyarrow.csv failed: find the row (and column) to blame."""
    text = str(err)
    if "Expected" in text and "columns" in text:
        first = []

        def handler(row):
            if not first:
                first.append(row)
            return "skip"

        parse, convert = _csv_options(present, pa.string())
        parse.invalid_row_handler = handler
        pcsv.read_csv(path, read_options=pcsv.ReadOptions(use_threads=False),
                      parse_options=parse, convert_options=convert)
        if first:
            r = first[0]
            row = r.number - 1 if r.number else 0
            return IngestError(file, row, "", f"expected {r.expected_columns} fields, "
                                              f"got {r.actual_columns}: {_show(r.text)}")
    if "UTF8" in text or "UTF-8" in text:
        parse, convert = _csv_options(present, pa.binary())
        raw = pcsv.read_csv(path, parse_options=parse, convert_options=convert)
        for name in present:
            col = raw.column(name)
            try:
                pc.cast(col, pa.string())
            except pa.ArrowInvalid:
                i = _first_failure(col, lambda a: pc.cast(a, pa.string()))
                return IngestError(file, i + 1, name, f"invalid UTF-8 text: {_show(col[i].as_py())}")
    return IngestError(file, 0, "", f"cannot read CSV: {text}")


def _csv_batches(path: Path, table: str, file: str, batch_rows: int, columns=None):
    """(raw text columns, rows) per block of a CSV file."""
    header = _csv_header(path, file)
    wanted = [c.name for c in TABLES[table]]
    for name in wanted:
        if header.count(name) > 1:
            raise IngestError(file, 0, name, f"column {name!r} appears more than once in the header")
    present = [n for n in wanted if n in header]
    _missing_required(table, present, file)
    if columns is not None:
        present = [c for c in present if c in columns]
    parse, convert = _csv_options(present, pa.string())
    read = pcsv.ReadOptions(block_size=max(1 << 20, min(batch_rows * 64, 1 << 28)))
    try:
        reader = pcsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        empty = True
        for batch in reader:
            empty = False
            yield {name: pa.chunked_array([batch.column(name)]) for name in present}, batch.num_rows
        if empty:
            yield {name: pa.chunked_array([], pa.string()) for name in present}, 0
    except pa.ArrowInvalid as e:
        try:
            located = _csv_read_error(path, present, file, e)
        except pa.ArrowException:
            located = IngestError(file, 0, "", f"cannot read CSV: {e}")
        raise located from None


def table_units(path: str | Path, batch_rows: int = 1 << 20) -> list:
    """The independent parts of a file that can be read at once: for Parquet, runs of row
    groups of about batch_rows rows, as (row_groups (a, b), index of their first row); a CSV
    file is one part (None, 0)."""
    path = Path(path)
    if path.suffix.lower() != ".parquet":
        return [(None, 0)]
    try:
        md = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError):
        return [(None, 0)]   # the reader names the problem
    out, start, rows, first = [], 0, 0, 0
    for g in range(md.num_row_groups):
        n = md.row_group(g).num_rows
        if rows and rows + n > batch_rows:
            out.append(((start, g), first))
            start, first, rows = g, first + rows, 0
        rows += n
    if md.num_row_groups == 0 or rows or not out:
        out.append(((start, md.num_row_groups), first))
    return out if md.num_row_groups > 1 else [(None, 0)]


def iter_table_batches(path: str | Path, table: str, name: Optional[str] = None, batch_rows: int = 1 << 20,
                       columns: Optional[tuple] = None, unit=(None, 0), coded: tuple = ()):
    """Read one .parquet/.csv file of `table` part by part: yields (first row index, canonical
    validated table) per batch of about `batch_rows` rows. Errors name the file, the 1-based
    row within the whole file and the column; within a batch the earliest row's error is
    named (see _canonical). `columns` limits the columns converted (the others are null);
    `unit`, one of table_units(path), reads only that part of the file. Text columns named
    in `coded` that a Parquet file stores dictionary-encoded stay dictionary arrays (their
    values validated, never decoded row by row): a load that only wants their codes is
    spared hashing every value again."""
    path = Path(path)
    file = name or path.name
    if table not in TABLES:
        raise IngestError(file, 0, "", f"unknown table {table!r}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        batches, convert = _parquet_batches(path, table, file, batch_rows, columns, unit[0], coded), _from_arrow
    elif suffix == ".csv":
        batches, convert = _csv_batches(path, table, file, batch_rows, columns), _from_text
    else:
        raise IngestError(file, 0, "", "expected a .parquet or .csv file")
    offset = unit[1]
    for raw, nrows in batches:
        try:
            yield offset, _canonical(raw, nrows, table, file, convert, coded)
        except IngestError as e:
            if e.row:
                raise IngestError(e.file, e.row + offset, e.column, e.message) from None
            raise
        offset += nrows


def read_table_file(path: str | Path, table: str, name: Optional[str] = None) -> pa.Table:
    """Read one .parquet/.csv file of `table` and return it canonical and validated.

    `name` is how errors name the file (default: its file name). Checks everything that
    one file can show: required columns, types, nulls in required columns, closed domains.
    """
    parts = [t for _, t in iter_table_batches(path, table, name)]
    if not parts:
        return canonical_schema(table).empty_table()
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)


def _canonical(raw: dict, nrows: int, table: str, file: str, convert: Callable, coded=()) -> pa.Table:
    """Columns of `table` (name -> arrow column, absent = all null) converted, checked and
    assembled in canonical schema order (optional text columns in `coded` that come as
    dictionaries stay dictionary<int32, string>, their dictionary values validated)."""
    columns = []
    schema = canonical_schema(table)
    for c in TABLES[table]:
        to = CANONICAL[c.type]
        if (c.name in coded and c.name in raw and c.type == "string" and not c.required
                and pa.types.is_dictionary(raw[c.name].type)):
            col = raw[c.name].unify_dictionaries()
            chunks = [pa.DictionaryArray.from_arrays(pc.cast(ch.indices, pa.int32()),
                                                     convert(pa.chunked_array([ch.dictionary]), c, file).combine_chunks())
                      for ch in col.chunks]
            arr = pa.chunked_array(chunks, pa.dictionary(pa.int32(), to)) if chunks else \
                pa.chunked_array([], pa.dictionary(pa.int32(), to))
            schema = schema.set(schema.get_field_index(c.name), pa.field(c.name, arr.type))
            columns.append(arr)
            continue
        if c.name not in raw:
            arr = pa.chunked_array([pa.nulls(nrows, to)], to)
            columns.append(pc.fill_null(arr, True) if c.name == "active" else arr)
            continue
        # Within a column the error named is the one at the earliest row, whatever its kind.
        try:
            arr = convert(raw[c.name], c, file)
            if c.type in _CALENDAR:
                _check_calendar(arr, c, file)
        except IngestError as e:
            if c.required and e.row > 1:
                _check_required(raw[c.name].slice(0, e.row - 1), file, c.name)
            raise
        if c.required:
            _check_required(arr, file, c.name)
        if (table, c.name) in DOMAINS:
            arr = _check_domain(arr, DOMAINS[table, c.name], file, c.name)
        if c.name == "active":
            arr = pc.fill_null(arr, True)
        columns.append(arr)
    return pa.Table.from_arrays(columns, schema=schema)


_CALENDAR = {
    "date": (pa.scalar(limits.MIN_DATE, pa.date32()), pa.scalar(limits.MAX_DATE, pa.date32())),
    "timestamp": (pa.scalar(limits.MIN_INSTANT, CANONICAL["timestamp"]),
                  pa.scalar(limits.MAX_INSTANT, CANONICAL["timestamp"])),
}


def _check_calendar(arr, c: Column, file: str) -> None:
    """Dates and instants inside the valid calendar (limits.MIN_DATE..MAX_DATE, instants in
    UTC): what lies outside cannot be read in every zone, so it is refused at the door."""
    lo, hi = _CALENDAR[c.type]
    outside = pc.or_(pc.less(arr, lo), pc.greater(arr, hi))
    i = _first_true(outside)
    if i >= 0:
        shown = pc.cast(arr.slice(i, 1), pa.string())[0].as_py()
        what = "date" if c.type == "date" else "instant"
        raise IngestError(file, i + 1, c.name,
                          f"{what} {shown} is outside the supported calendar {limits.CALENDAR}"
                          + (" (UTC)" if c.type == "timestamp" else "")
                          + ("; leave it empty when it is unknown" if not c.required else ""))


def rows_table(table: str, rows, name: Optional[str] = None) -> pa.Table:
    """Canonical, validated table from in-memory rows (a pa.Table or a list of dicts keyed by
    column name), checked like a file of a bulk load; errors name `name` (default: the
    table), the 1-based row and the column. Unknown columns are an error here: a typo in a
    change would otherwise drop a value silently."""
    file = name or table
    if table not in TABLES:
        raise IngestError(file, 0, "", f"unknown table {table!r}")
    if not isinstance(rows, pa.Table):
        if not isinstance(rows, (list, tuple)) or not all(isinstance(r, dict) for r in rows):
            raise IngestError(file, 0, "", "rows must be a pyarrow Table or a list of dicts")
        known = {c.name for c in TABLES[table]}
        for i, r in enumerate(rows):
            extra = sorted(set(r) - known)
            if extra:
                raise IngestError(file, i + 1, extra[0], f"unknown column {extra[0]!r} in {table}")
        rows = _pylist_table(table, rows, file)
    else:
        extra = sorted(set(rows.column_names) - {c.name for c in TABLES[table]})
        if extra:
            raise IngestError(file, 0, extra[0], f"unknown column {extra[0]!r} in {table}")
    present = [c.name for c in TABLES[table] if c.name in rows.column_names]
    _missing_required(table, present, file)

    def convert(arr, c, f):
        if _is_text(arr.type) and c.type != "string":
            return _from_text(arr, c, f)
        return _from_arrow(arr, c, f)
    return _canonical({n: rows.column(n) for n in present}, rows.num_rows, table, file, convert)


_PY_KINDS = {  # logical type -> (accepted python types, what to say)
    "int64": ((int,), "an integer"), "int32": ((int,), "an integer"),
    "string": ((str,), "text"), "bool": ((bool,), "true or false"),
    "date": ((dt.date, str), "a date (datetime.date or YYYY-MM-DD text)"),
    "timestamp": ((dt.datetime, str), "an instant (aware datetime or ISO-8601 text with offset)"),
    "list<string>": ((list, tuple, str), "a list of text (or 'a;b' text)"),
}


def _pylist_table(table: str, rows: list, file: str) -> pa.Table:
    """A list of dicts as an arrow table, one column at a time; a value of the wrong kind
    (a float amount, a number for a name, a naive datetime) names its row and column."""
    cols = {}
    for c in TABLES[table]:
        if not any(c.name in r for r in rows):
            continue
        values = [r.get(c.name) for r in rows]
        if c.type != "string" and any(isinstance(v, str) for v in values):
            cols[c.name] = pa.array([_as_text(v) for v in values], pa.string())  # the CSV conventions
            continue
        kinds, what = _PY_KINDS[c.type]
        for i, v in enumerate(values):
            if v is None:
                continue
            bad = not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds)
            if c.type == "date" and isinstance(v, dt.datetime):
                bad = True
            if c.type == "timestamp" and isinstance(v, dt.datetime) and v.tzinfo is None:
                raise IngestError(file, i + 1, c.name, f"instant {v} has no time zone")
            if c.type == "list<string>" and isinstance(v, (list, tuple)) and not all(isinstance(x, str) for x in v):
                bad = True
            if bad:
                raise IngestError(file, i + 1, c.name, f"expected {what}, got {_show(v)}")
        if c.type == "timestamp":
            values = [v.astimezone(dt.timezone.utc) if isinstance(v, dt.datetime) else v for v in values]
        try:
            cols[c.name] = pa.array(values, type=CANONICAL[c.type] if c.type not in ("date", "timestamp") else None)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
            bad = next((i for i in range(len(values)) if not _converts(values[:i + 1])), 0)
            raise IngestError(file, bad + 1, c.name,
                              f"value {_show(values[bad])} of the wrong kind ({e})") from None
    return pa.Table.from_pydict(cols)


def _as_text(v):
    """A python value in the CSV text conventions (validated by the text converters)."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return ";".join(str(x) for x in v)
    return str(v)


def _converts(values) -> bool:
    try:
        pa.array(values)
        return True
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return False


def _check_required(arr, file: str, col: str) -> None:
    """IngestError at the first null of arr."""
    if arr.null_count:
        i = _first_true(pc.is_null(arr))
        raise IngestError(file, i + 1, col, f"required value is missing (empty/null) in {col}")


def _check_domain(arr, allowed, file: str, col: str):
    """Values of arr must be in `allowed` (after lower-casing and trimming, which slow data needs)."""
    values = pa.array(allowed)
    if pc.all(pc.is_in(arr, value_set=values)).as_py() is not False:
        return arr
    arr = pc.utf8_trim_whitespace(pc.utf8_lower(arr))
    i = _first_true(pc.invert(pc.is_in(arr, value_set=values)))
    if i >= 0:
        raise IngestError(file, i + 1, col,
                          f"{col} must be one of {', '.join(allowed)}; got {_show(arr[i].as_py())}")
    return arr


# ----------------------------------------------------------------------------- a folder

def find_table_files(folder: str | Path) -> dict[str, list[Path]]:
    """Table name -> its files in `folder` (one file, or a part folder's files in name order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IngestError(str(folder), 0, "", "not a folder")
    found: dict[str, list[Path]] = {}
    for table in TABLE_NAMES:
        candidates = [p for p in (folder / f"{table}.parquet", folder / f"{table}.csv") if p.is_file()]
        candidates += [folder / table] if (folder / table).is_dir() else []
        if len(candidates) > 1:
            names = " and ".join(_rel(p, folder) + ("/" if p.is_dir() else "") for p in candidates)
            raise IngestError(_rel(candidates[0], folder), 0, "",
                              f"table {table} is given twice ({names}); keep one")
        if not candidates:
            continue
        p = candidates[0]
        if not p.is_dir():
            found[table] = [p]
            continue
        parts = sorted((q for q in p.iterdir()
                        if q.is_file() and q.suffix.lower() in _SUFFIXES and q.name[0] not in "._"),
                       key=lambda q: q.name)
        kinds = {q.suffix.lower() for q in parts}
        if len(kinds) > 1:
            raise IngestError(f"{table}/", 0, "", f"part folder {table}/ mixes .csv and .parquet files")
        if not parts:
            raise IngestError(f"{table}/", 0, "", f"part folder {table}/ holds no .parquet or .csv files")
        found[table] = parts
    return found


def _rel(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()


def read_folder(folder: str | Path, known_ids: np.ndarray | None = None,
                require_customers: bool = True, progress: bool = False) -> dict[str, pa.Table]:
    """Read and validate every table file in `folder`; return table name -> canonical pa.Table.

    known_ids: sorted int64 customer ids already in the dataset (None = none). With
    require_customers (the first load) a customers file must be present.
    """
    folder = Path(folder)
    found = find_table_files(folder)
    if not found:
        raise IngestError("", 0, "", f"no table files in {folder}: expected "
                          + ", ".join(TABLE_NAMES) + " as .parquet, .csv or a folder of parts")
    if require_customers and "customers" not in found:
        raise IngestError("customers", 0, "", "missing customers file (customers.parquet, "
                          "customers.csv or customers/): the first load needs one")

    files = [(t, p) for t, ps in found.items() for p in ps]
    show = progress and sys.stderr.isatty()
    bar = None
    if show:
        from tqdm import tqdm
        bar = tqdm(total=len(files), unit="file", desc="reading", file=sys.stderr)
    tables: dict[str, list] = {}           # table -> its files' canonical tables
    extents: dict[str, list] = {}          # table -> [(file name, row count)] in concat order
    rows = 0
    try:
        for table, path in files:
            name = _rel(path, folder)
            part = read_table_file(path, table, name)
            tables.setdefault(table, []).append(part)
            extents.setdefault(table, []).append((name, part.num_rows))
            rows += part.num_rows
            if bar is not None:
                bar.set_postfix(rows=f"{rows:,}", refresh=False)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    out = {t: parts[0] if len(parts) == 1 else pa.concat_tables(parts) for t, parts in tables.items()}

    load_ids = np.empty(0, dtype=np.int64)
    if "customers" in out:
        load_ids = _unique_customer_ids(out["customers"], extents["customers"])
    known = _sorted_ids(known_ids)
    for table in REFERENCING_TABLES:
        if table in out:
            _check_known_customers(out[table], extents[table], load_ids, known)
    return out


def _ids(t: pa.Table) -> np.ndarray:
    return t.column("customer_id").to_numpy()


def _sorted_copy(t: pa.Table) -> np.ndarray:
    """customer_id of t sorted, sorting in place when to_numpy already had to copy."""
    a = _ids(t)
    if a.flags.writeable:
        a.sort()
        return a
    return np.sort(a)


def _locate(extent, index: int) -> tuple[str, int]:
    """(file name, 1-based row) of the index-th row of a table concatenated from `extent`."""
    ends = np.cumsum([n for _, n in extent])
    k = int(np.searchsorted(ends, index, side="right"))
    start = int(ends[k - 1]) if k else 0
    return extent[k][0], index - start + 1


def _unique_customer_ids(customers: pa.Table, extent) -> np.ndarray:
    """The sorted customer ids of this load; IngestError at the first repeat of an id."""
    s = _sorted_copy(customers)
    dup = s[1:] == s[:-1]
    if not dup.any():
        return s
    ids = _ids(customers)
    # slow path: the earliest row whose id occurred before
    idx = np.flatnonzero(np.isin(ids, np.unique(s[1:][dup])))
    vals = ids[idx]
    order = np.argsort(vals, kind="stable")
    sv, si = vals[order], idx[order]
    second = int(si[1:][sv[1:] == sv[:-1]].min())
    v = int(ids[second])
    first = int(idx[vals == v].min())
    f0, r0 = _locate(extent, first)
    f1, r1 = _locate(extent, second)
    raise IngestError(f1, r1, "customer_id", f"duplicate customer_id {v} (first at {f0} row {r0})")


def _sorted_ids(known_ids) -> np.ndarray | None:
    if known_ids is None:
        return None
    k = np.asarray(known_ids, dtype=np.int64)
    if k.size > 1 and not (k[1:] >= k[:-1]).all():
        k = np.sort(k)
    return k


def _member(sorted_hay: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """needles in sorted_hay, elementwise (fast when needles are sorted too)."""
    if sorted_hay.size == 0:
        return np.zeros(needles.shape, dtype=bool)
    pos = np.searchsorted(sorted_hay, needles)
    pos[pos == sorted_hay.size] = 0
    return sorted_hay[pos] == needles


def _check_known_customers(t: pa.Table, extent, load_ids: np.ndarray, known) -> None:
    """Every customer_id of t is in load_ids or known; else IngestError at the first that is not."""
    s = _sorted_copy(t)     # sorted needles keep the binary searches cache-friendly
    if s.size == 0:
        return
    keep = np.empty(s.size, dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    u = s[keep]
    unknown = u[~_member(load_ids, u)]
    if unknown.size and known is not None:
        unknown = unknown[~_member(known, unknown)]
    if unknown.size:
        ids = _ids(t)
        i = int(np.argmax(np.isin(ids, unknown)))
        f, r = _locate(extent, i)
        raise IngestError(f, r, "customer_id",
                          f"unknown customer_id {int(ids[i])}: not in this load's customers "
                          "nor in the dataset")
