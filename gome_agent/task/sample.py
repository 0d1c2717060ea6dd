"""The competition's sample submission: the contract every submission must meet.

MLE-bench names it differently across competitions (`sample_submission.csv`,
`sampleSubmission.csv`, `sample_submission_null.csv`, zipped CSVs), so it is
found by pattern, and exactly one candidate must win.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pandas as pd

from gome_agent.errors import TaskError

_SAMPLE_NAME = re.compile(r"sample[_\- ]?submission.*\.csv(\.zip|\.gz|\.bz2|\.xz)?$", re.IGNORECASE)


def find_sample_submission(data_dir: Path) -> Path:
    """The sample submission file of a competition folder (top level first, then one level down)."""
    if not data_dir.is_dir():
        raise TaskError(f"competition folder {data_dir} does not exist or is not a folder")
    for pattern in ("*", "*/*"):
        found = sorted(p for p in data_dir.glob(pattern) if p.is_file() and _SAMPLE_NAME.search(p.name))
        if found:
            # Prefer the plain CSV over a compressed copy of the same file.
            found.sort(key=lambda p: (p.suffix != ".csv", len(p.name), p.name))
            return found[0]
    raise TaskError(
        f"no sample submission in {data_dir}: expected a file such as sample_submission.csv "
        "(it defines the columns, ids and row count every submission must have)"
    )


@dataclass(frozen=True)
class SampleSubmission:
    """Columns, ids and shape that a valid submission must reproduce."""

    path: Path
    columns: list[str]
    id_column: str
    ids: frozenset[str]
    n_rows: int
    numeric_columns: frozenset[str] = field(default_factory=frozenset)
    head: str = ""

    @property
    def target_columns(self) -> list[str]:
        return [c for c in self.columns if c != self.id_column]

    def describe(self) -> str:
        """A short text for prompts: shape, columns and the first rows."""
        return (
            f"{self.path.name}: {self.n_rows} rows, columns {self.columns} "
            f"(id column: {self.id_column!r})\n{self.head}"
        )


def read_csv_checked(path: Path, **kwargs: object) -> pd.DataFrame:
    """Read a CSV or name the file and the reason it cannot be read."""
    try:
        return pd.read_csv(path, **kwargs)  # type: ignore[arg-type]
    except FileNotFoundError as exc:
        raise TaskError(f"{path} does not exist") from exc
    except pd.errors.EmptyDataError as exc:
        raise TaskError(f"{path} is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise TaskError(f"{path} is not a readable CSV file: {exc}") from exc


def load_sample_submission(path: Path, id_column: str | None = None) -> SampleSubmission:
    """Load and check a sample submission; `id_column` defaults to its first column."""
    frame = read_csv_checked(path, dtype=str, keep_default_na=False)
    if frame.shape[1] < 2:
        raise TaskError(
            f"{path} has {frame.shape[1]} column(s); a sample submission needs an id column "
            "and at least one prediction column"
        )
    if frame.shape[0] == 0:
        raise TaskError(f"{path} has a header but no rows")
    columns = [str(c) for c in frame.columns]
    id_col = id_column if id_column is not None else columns[0]
    if id_col not in columns:
        raise TaskError(f"id column {id_col!r} is not a column of {path} (columns: {columns})")
    ids = frame[id_col]
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].iloc[0]
        raise TaskError(f"{path}: id column {id_col!r} repeats the value {dup!r}; ids must be unique")
    numeric = frozenset(
        c for c in columns if c != id_col and pd.to_numeric(frame[c], errors="coerce").notna().all()
    )
    return SampleSubmission(
        path=path,
        columns=columns,
        id_column=id_col,
        ids=frozenset(ids.tolist()),
        n_rows=int(frame.shape[0]),
        numeric_columns=numeric,
        head=frame.head(3).to_csv(index=False),
    )


_DECOMPRESS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def _open_zipped_csv(archive: zipfile.ZipFile, path: Path) -> IO[bytes]:
    members = [m for m in archive.infolist()
               if not m.is_dir() and m.filename.lower().endswith(".csv") and not m.filename.startswith("__MACOSX/")]
    if len(members) != 1:
        names = [m.filename for m in members]
        raise TaskError(
            f"{path} must hold exactly one CSV file to be a sample submission; it holds {len(names)}: {names}")
    return archive.open(members[0])


def write_plain_sample(sample: Path, out: Path) -> None:
    """The sample submission as a plain CSV file at `out` (a fallback submission): a zipped or
    compressed sample (text normalization's `en_sample_submission_2.csv.zip`) is decompressed,
    since a grader reads `submission.csv` as plain text."""
    suffix = sample.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        if suffix == ".zip":
            with zipfile.ZipFile(sample) as archive, _open_zipped_csv(archive, sample) as src, \
                    open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst)
        elif suffix in _DECOMPRESS:
            with _DECOMPRESS[suffix](sample, "rb") as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            shutil.copyfile(sample, partial)
        os.replace(partial, out)
    except (OSError, zipfile.BadZipFile, lzma.LZMAError, EOFError) as exc:
        raise TaskError(f"the sample submission {sample} cannot be read: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
