"""A profile of the competition's tables, computed once per run for every prompt that writes code.

Per column: its type, missing values, unique count, and its range (numbers) or most common values
(categories and text); for the training table, the distribution of the target. Weak models stop
feeding ids like `w0119` to a float model when the profile says the column is text with all
values unique; strong ones see class imbalance and skew before their first draft.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gome_agent.task.analysis import Task
from gome_agent.task.scan import CompetitionScan, text_table_separator

PROFILE_ROWS = 50_000  # rows read per table
PROFILE_TABLES = 3
PROFILE_COLUMNS = 60  # columns described per table; the rest are summarised
NUMERIC_PER_LINE = 6
PROFILE_CHARS = 5000


def profile_tables(scan: CompetitionScan, task: Task) -> str:
    """The profile text for prompts (empty when no table can be read)."""
    frames: dict[str, tuple[pd.DataFrame, int | None]] = {}
    tables = scan.text_tables()[:PROFILE_TABLES]
    for info in tables:
        frame = _read(scan.data_dir / info.path)
        if frame is not None:
            frames[info.path] = (frame, info.rows)
    if not frames:
        return ""
    blocks: list[str] = []
    profiled: dict[str, set[str]] = {}
    for info in tables:
        if info.path not in frames:
            continue
        frame, rows = frames[info.path]
        like = next((other for other, cols in profiled.items() if set(frame.columns) <= cols), None)
        if like is not None:
            # A test table with the training table's columns: only what differs is worth the space.
            blocks.append(_like_block(info.path, frame, rows, like, profiled[like]))
            continue
        targets = [c for c in scan.label_columns(info, task.id_column, task.target_columns) if c in frame.columns]
        blocks.append(_table_block(info.path, frame, rows, targets, task.id_column))
        profiled[info.path] = set(frame.columns)
    text = "\n".join(blocks)
    return text if len(text) <= PROFILE_CHARS else text[:PROFILE_CHARS] + "\n... (profile cut)"


def _read(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, sep=text_table_separator(path.name), nrows=PROFILE_ROWS, low_memory=False)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, EOFError):
        return None


def _extent(frame: pd.DataFrame, rows: int | None) -> str:
    read = len(frame)
    return f"{read:,} rows" if rows is None or rows <= read else f"first {read:,} of {rows:,} rows read"


def _missing(series: pd.Series) -> str:
    share = float(series.isna().mean())
    return f" ({share:.1%} missing)" if share else ""


def _table_block(rel: str, frame: pd.DataFrame, rows: int | None, targets: list[str], id_column: str) -> str:
    complete = "; no missing values" if not frame.isna().any().any() else ""
    lines = [f"{rel} ({_extent(frame, rows)}, {len(frame.columns)} columns{complete}):"]
    for column in targets:
        lines.append(f"- target `{column}`: {_distribution(frame[column])}")
    rest = [c for c in frame.columns if c not in targets]
    if id_column in rest:
        ids = frame[id_column]
        unique = "all values unique" if ids.is_unique else f"{ids.nunique():,} unique values"
        lines.append(f"- id `{id_column}`: {_kind(ids)}, {unique}{_missing(ids)}")
        rest.remove(id_column)
    described, numeric = rest[:PROFILE_COLUMNS], []
    for column in described:
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            numeric.append(column)
        else:
            lines.append(f"- `{column}`: {_column(series)}")
    for i in range(0, len(numeric), NUMERIC_PER_LINE):
        chunk = numeric[i:i + NUMERIC_PER_LINE]
        ranges = ", ".join(f"{c} {_range(frame[c])}{_missing(frame[c])}" for c in chunk)
        lines.append(f"- numeric (min..max): {ranges}")
    if rest[PROFILE_COLUMNS:]:
        more = rest[PROFILE_COLUMNS:]
        count = sum(pd.api.types.is_numeric_dtype(frame[c]) for c in more)
        lines.append(f"- ... and {len(more)} more columns ({count} numeric, {len(more) - count} other; "
                     f"{sum(bool(frame[c].isna().any()) for c in more)} with missing values)")
    return "\n".join(lines)


def _like_block(rel: str, frame: pd.DataFrame, rows: int | None, like: str, like_columns: set[str]) -> str:
    absent = sorted(like_columns - set(frame.columns))
    line = f"{rel} ({_extent(frame, rows)}): the columns of {like}" + (f" without {', '.join(absent)}" if absent else "")
    gaps = [f"{c}{_missing(frame[c])}" for c in frame.columns if frame[c].isna().any()]
    return line + ("; missing values in " + ", ".join(gaps[:20]) if gaps else "; no missing values")


def _range(series: pd.Series) -> str:
    values = series.dropna()
    if values.empty:
        return "empty"
    lo, hi = float(values.min()), float(values.max())
    return f"constant {_fmt(lo)}" if lo == hi else f"{_fmt(lo)}..{_fmt(hi)}"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return repr(text[:40] + "..." if len(text) > 40 else text)


def _column(series: pd.Series) -> str:
    """A non-numeric column: its values (categories) or their shape (text)."""
    unique = int(series.nunique(dropna=True))
    values = series.dropna()
    head = f"{_kind(series)}, {unique:,} unique{_missing(series)}"
    if values.empty:
        return head
    if unique <= 20:
        counts = values.astype(str).value_counts().head(6)
        return head + ": " + ", ".join(f"{_fmt(v)} {n:,}" for v, n in counts.items())
    lengths = values.astype(str).str.len()
    return head + f", e.g. {_fmt(values.iloc[0])}; length {int(lengths.min())}..{int(lengths.max())}"


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    return "text" if series.nunique(dropna=True) > 20 else "category"


def _distribution(series: pd.Series) -> str:
    values = series.dropna()
    missing = len(series) - len(values)
    note = f"; {missing:,} missing" if missing else ""
    if values.empty:
        return "no values" + note
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series) and values.nunique() > 20:
        q = values.quantile([0.0, 0.25, 0.5, 0.75, 1.0]).tolist()
        return (f"{_kind(series)}, min {_fmt(q[0])}, p25 {_fmt(q[1])}, median {_fmt(q[2])}, p75 {_fmt(q[3])}, "
                f"max {_fmt(q[4])}, mean {_fmt(float(values.mean()))}, skew {_fmt(float(values.skew()))}" + note)
    counts = values.astype(str).value_counts()
    shown = ", ".join(f"{_fmt(v)} {n:,} ({n / len(values):.1%})" for v, n in counts.head(10).items())
    more = f", ... {len(counts) - 10} more classes" if len(counts) > 10 else ""
    return f"{len(counts)} classes: {shown}{more}" + note
