"""Reading a competition folder: its description, sample submission and a compact file listing.

`scan_competition` lists the folder compactly (tables with rows, columns and a
preview; image folders and archives summarised, never listed file by file); the
task analysis (analysis.py) reads the competition from this scan.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import math
import os
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, PrivateAttr

from gome_agent.errors import TaskError
from gome_agent.task.sample import SampleSubmission, find_sample_submission, load_sample_submission, read_csv_checked

FileKind = Literal["table", "json", "text", "image", "audio", "archive", "directory", "other"]

DIR_COUNT_CAP = 200_000  # files counted per folder before saying "more than ..."
SMALL_DIR_FILES = 12  # folders with at most this many files are listed file by file
HEAD_ROWS = 200  # rows read to infer column types
PREVIEW_ROWS = 3
PREVIEW_COLUMNS = 20
CELL_CHARS = 60
TEXT_LINE_CHARS = 120
JSON_PARSE_BYTES = 32 * 2**20  # parsed JSON takes several times its size in memory

_CHUNK = 2**20
# Row counting reads at most this much (uncompressed) before estimating; slow codecs get less.
_COUNT_LIMIT = {"": 2 * 2**30, "zip": 512 * 2**20, "gzip": 512 * 2**20, "bz2": 128 * 2**20, "xz": 128 * 2**20}

_COMPRESSION_SUFFIXES = {".gz": "gzip", ".zip": "zip", ".bz2": "bz2", ".xz": "xz"}
_TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_COLUMNAR_SUFFIXES = {".parquet", ".feather", ".arrow", ".pq"}
_JSON_SUFFIXES = {".json", ".jsonl", ".ndjson"}
_TEXT_SUFFIXES = {
    ".txt", ".md", ".xml", ".html", ".htm", ".yaml", ".yml", ".py", ".r", ".log", ".names", ".ini", ".cfg", ".srt",
}
_IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".dcm", ".dicom", ".jp2", ".ppm", ".pgm",
}
_AUDIO_SUFFIXES = {".wav", ".mp3", ".flac", ".aif", ".aiff", ".aifc", ".ogg", ".m4a", ".au", ".opus"}
_ARCHIVE_SUFFIXES = {".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".7z", ".rar"}
_READ_ERRORS = (
    pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError, EOFError,
    zipfile.BadZipFile, lzma.LZMAError,
)


class FileInfo(BaseModel):
    """One file or folder of the competition, as far as a prompt needs to know it."""

    path: str
    kind: FileKind
    size_bytes: int
    rows: int | None = None
    columns: list[str] | None = None
    dtypes: dict[str, str] | None = None
    preview: str | None = None
    n_files: int | None = None
    note: str | None = None


class CompetitionScan(BaseModel):
    """What is in a competition folder: description, sample submission and a listing of the files."""

    data_dir: Path
    competition_id: str
    description: str
    sample_path: Path
    files: list[FileInfo]
    unlisted: str | None = None  # summary of top-level entries beyond max_entries
    _sample: SampleSubmission | None = PrivateAttr(default=None)

    def sample_submission(self) -> SampleSubmission:
        """The checked sample submission (loaded once by the scan; big samples take seconds to read)."""
        if self._sample is None:
            self._sample = _load_sample(self.sample_path)
        return self._sample

    def files_text(self, max_chars: int = 6000) -> str:
        """A listing for prompts of at most `max_chars` characters.

        Every entry gets a one-line summary; columns and previews are added
        (tables first) while they fit, so a wide table cannot push the other files out.
        """
        header = "Files (paths relative to the competition folder):"
        tail = f"- {self.unlisted}" if self.unlisted else ""
        budget = max_chars - len(header) - (len(tail) + 1 if tail else 0)
        shorts = [_short_line(f) for f in self.files]
        used = 0
        shown = 0
        for i, short in enumerate(shorts):
            after = len(shorts) - i - 1
            reserve = len(_more_line(after)) + 1 if after else 0
            if used + len(short) + 1 + reserve > budget:
                break
            used += len(short) + 1
            shown += 1
        more = _more_line(len(shorts) - shown) if shown < len(shorts) else ""
        room = budget - (len(more) + 1 if more else 0)
        chosen = shorts[:shown]
        only_here = self._columns_only_here()
        for i in sorted(range(shown), key=lambda i: (_DETAIL_RANK[self.files[i].kind], i)):
            full = _full_block(self.files[i], only_here.get(self.files[i].path, []))
            if used + len(full) - len(chosen[i]) <= room:
                used += len(full) - len(chosen[i])
                chosen[i] = full
        lines = [header, *chosen, *([more] if more else []), *([tail] if tail else [])]
        return "\n".join(lines)[:max_chars]


    def text_tables(self) -> list[FileInfo]:
        """The CSV/TSV tables besides the sample submission: training ones first, then test ones."""
        sample = _relative(self.sample_path, self.data_dir)
        tables = [f for f in self.files if f.kind == "table" and f.path != sample and f.columns
                  and text_table_separator(f.path) is not None]
        return sorted(tables, key=lambda f: (0 if "train" in f.path.lower() else 1 if "test" in f.path.lower() else 2,
                                             f.path))

    def label_columns(self, table: FileInfo, id_column: str, targets: list[str]) -> list[str]:
        """The label columns of a training table: the targets it has, else the columns no test table
        has (one label column behind the sample's per-class probability columns)."""
        labels = [c for c in targets if c in (table.columns or [])]
        test_columns = {c for f in self.text_tables() if "test" in f.path.lower() for c in f.columns or []}
        if labels or not test_columns or "test" in table.path.lower():
            return labels
        return [c for c in table.columns or [] if c not in test_columns and c != id_column]

    def _columns_only_here(self) -> dict[str, list[str]]:
        """Per table, its columns that no other table has (the sample submission aside): in a
        training table these are the targets, which a cut column list must still name."""
        sample_rel = _relative(self.sample_path, self.data_dir)
        tables = [f for f in self.files if f.columns and f.path != sample_rel]
        if len(tables) < 2:
            return {}
        seen = Counter(c for f in tables for c in set(f.columns or []))
        return {f.path: [c for c in f.columns or [] if seen[c] == 1] for f in tables}


def _more_line(count: int) -> str:
    return f"- ... and {count} more entries"


_DETAIL_RANK: dict[str, int] = {
    "table": 0, "json": 1, "text": 2, "archive": 3, "directory": 4, "other": 5, "image": 6, "audio": 6,
}


# ---------------------------------------------------------------- scanning


def scan_competition(
    data_dir: Path,
    *,
    max_entries: int = 80,
    competition_id: str | None = None,
    description_path: Path | None = None,
) -> CompetitionScan:
    """Read description, sample submission and a compact listing of a competition folder.

    `competition_id` overrides the id taken from the folder name (inside the
    MLE-bench container the folder is /home/data and the id is in $COMPETITION_ID).
    `description_path` replaces the folder's description.md (MLE-bench's full
    instructions, or an obfuscated description, without writing into a read-only folder).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise TaskError(f"competition folder {data_dir} does not exist or is not a folder")
    description = _read_description(description_path or data_dir / "description.md")
    sample_path = find_sample_submission(data_dir)
    sample = _load_sample(sample_path)
    files, unlisted = _list_files(data_dir, sample_path, max(1, max_entries))
    scan = CompetitionScan(
        data_dir=data_dir,
        competition_id=competition_id or competition_id_of(data_dir),
        description=description,
        sample_path=sample_path,
        files=files,
        unlisted=unlisted,
    )
    scan._sample = sample
    return scan


def competition_id_of(data_dir: Path) -> str:
    """The competition's name from its folder: MLE-bench's `<id>/prepared/public` and the offline
    benchmark's `<id>/public` are named by `<id>`, any other folder by itself."""
    parts = data_dir.resolve().parts
    if len(parts) >= 3 and parts[-2:] == ("prepared", "public"):
        return parts[-3]
    if len(parts) >= 2 and parts[-1] == "public":
        return parts[-2]
    return parts[-1] if parts else str(data_dir)


def _read_description(path: Path) -> str:
    if not path.is_file():
        raise TaskError(
            f"{path} does not exist: MLE-bench's prepare step always writes description.md into the "
            "competition folder, and no other name (description.txt, README) is read"
        )
    try:
        # A stray non-UTF-8 byte in a long description should not stop the run.
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise TaskError(f"{path} cannot be read: {exc}") from exc
    if not text.strip():
        raise TaskError(f"{path} is empty: the competition description is needed to know the task")
    return text


def _load_sample(path: Path) -> SampleSubmission:
    """Load the sample submission, taking the first column as id unless its values repeat.

    Some samples lead with the prediction column (detecting-insults: Insult, Date,
    Comment); then the first column whose values are unique is the id.
    """
    try:
        return load_sample_submission(path)
    except TaskError as first_error:
        frame = read_csv_checked(path, dtype=str, keep_default_na=False)
        for column in frame.columns[1:]:
            if not frame[column].duplicated().any():
                return load_sample_submission(path, id_column=str(column))
        raise first_error


def _list_files(data_dir: Path, sample_path: Path, max_entries: int) -> tuple[list[FileInfo], str | None]:
    try:
        with os.scandir(data_dir) as it:
            entries = [(e.name, Path(e.path), e.is_dir()) for e in it]
    except OSError as exc:
        raise TaskError(f"competition folder {data_dir} cannot be listed: {exc}") from exc
    entries.sort(key=lambda e: e[0])
    if len(entries) > max_entries:
        # Keep data files and folders; loose images or audio at top level are what gets summarised.
        ranked = sorted(entries, key=lambda e: (_listing_rank(e[1], e[2], sample_path), e[0]))
        keep = {e[1] for e in ranked[:max_entries]}
        rest = [e for e in entries if e[1] not in keep]
        entries = [e for e in entries if e[1] in keep]
        unlisted = _unlisted_summary(rest)
    else:
        unlisted = None

    infos: list[FileInfo] = []
    for index, (_, path, is_dir) in enumerate(entries):
        if not is_dir:
            infos.append(_describe_file(path, data_dir, sample_path))
            continue
        tally = _tally_dir(path)
        left_for_others = len(entries) - index - 1
        if 0 < tally.files <= SMALL_DIR_FILES and not tally.capped and \
                len(infos) + tally.files + left_for_others <= max_entries:
            infos.extend(_describe_file(p, data_dir, sample_path) for p in sorted(tally.first_files))
        else:
            infos.append(_directory_info(path, data_dir, tally))
    return infos, unlisted


def _listing_rank(path: Path, is_dir: bool, sample_path: Path) -> int:
    if path == sample_path or path.name == "description.md":
        return 0
    if is_dir:
        return 2
    return 3 if _kind_of(path.name) in ("image", "audio") else 1


def _unlisted_summary(rest: list[tuple[str, Path, bool]]) -> str:
    exts: Counter[str] = Counter()
    folders = 0
    size = 0
    for _, path, is_dir in rest:
        if is_dir:
            folders += 1
            continue
        exts[_extension(path.name)] += 1
        try:
            size += path.stat().st_size
        except OSError:
            continue
    n_files = sum(exts.values())
    parts = []
    if n_files:
        parts.append(f"{n_files:,} more files ({_ext_summary(exts)}, {_human_size(size)})")
    if folders:
        parts.append(f"{folders:,} more {'folder' if folders == 1 else 'folders'}")
    return " and ".join(parts) + " at the top level, not listed"


@dataclass
class _Tally:
    files: int = 0
    size: int = 0
    folders: int = 0
    capped: bool = False
    extensions: Counter[str] = field(default_factory=Counter)
    first_files: list[Path] = field(default_factory=list)


def _tally_dir(root: Path, cap: int | None = None) -> _Tally:
    """Count files below `root` (symlinked folders are not followed), stopping at the cap."""
    cap = DIR_COUNT_CAP if cap is None else cap
    tally = _Tally()
    stack = [root]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        tally.folders += 1
                        stack.append(Path(entry.path))
                        continue
                    if not entry.is_file():
                        continue
                    tally.size += entry.stat().st_size
                except OSError:
                    continue
                tally.files += 1
                tally.extensions[_extension(entry.name)] += 1
                if len(tally.first_files) <= SMALL_DIR_FILES:
                    tally.first_files.append(Path(entry.path))
                if tally.files >= cap:
                    tally.capped = True
                    return tally
    return tally


def _directory_info(path: Path, data_dir: Path, tally: _Tally) -> FileInfo:
    if tally.files == 0:
        note = "empty folder" if tally.folders == 0 else f"{_plural(tally.folders, 'subfolder')}, no files"
    else:
        count = f"more than {tally.files:,}" if tally.capped else f"{tally.files:,}"
        note = f"{count} files ({_ext_summary(tally.extensions)})"
        if tally.folders:
            note += f" in {_plural(tally.folders, 'subfolder')}"
        if tally.capped:
            note += "; counting stopped"
    return FileInfo(
        path=_relative(path, data_dir), kind="directory", size_bytes=tally.size, n_files=tally.files, note=note
    )


def _describe_file(path: Path, data_dir: Path, sample_path: Path) -> FileInfo:
    kind = _kind_of(path.name)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return FileInfo(path=_relative(path, data_dir), kind=kind, size_bytes=0, note=f"cannot be read: {exc}")
    info = FileInfo(path=_relative(path, data_dir), kind=kind, size_bytes=size)
    if path.name == "description.md" and path.parent == data_dir:
        info.note = "the competition description (given in full separately)"
    elif kind == "table":
        _describe_table(path, info)
    elif kind == "json":
        _describe_json(path, info)
    elif kind == "text":
        _describe_text(path, info)
    elif kind == "archive":
        _describe_archive(path, info)
    if path == sample_path:
        info.note = "the sample submission" + (f"; {info.note}" if info.note else "")
    return info


def _describe_table(path: Path, info: FileInfo) -> None:
    name = path.name.lower()
    if Path(name).suffix in _COLUMNAR_SUFFIXES:
        info.note = "columnar file (not inspected by the scanner)"
        return
    sep = _TABLE_SUFFIXES[_table_suffix(name)]
    notes = []
    try:
        head = pd.read_csv(path, nrows=HEAD_ROWS, sep=sep)
    except UnicodeDecodeError:
        try:
            head = pd.read_csv(path, nrows=HEAD_ROWS, sep=sep, encoding="latin-1")
            notes.append("not UTF-8 (read as Latin-1)")
        except _READ_ERRORS as exc:
            info.note = f"unreadable CSV: {_short_error(exc)}"
            return
    except _READ_ERRORS as exc:
        info.note = f"unreadable CSV: {_short_error(exc)}"
        return
    info.columns = [str(c) for c in head.columns]
    info.dtypes = {str(c): str(t) for c, t in head.dtypes.items()}
    info.preview = _frame_preview(head)
    if head.shape[1] > PREVIEW_COLUMNS:
        notes.append(f"preview shows the first {PREVIEW_COLUMNS} of {head.shape[1]} columns")
    if len(head) < HEAD_ROWS:
        info.rows = len(head)
    else:
        rows, count_note = _count_table_rows(path)
        info.rows = rows
        if count_note:
            notes.append(count_note)
    info.note = "; ".join(notes) or None


def _count_table_rows(path: Path) -> tuple[int | None, str | None]:
    compression = _compression_of(path.name)
    limit = _COUNT_LIMIT[compression]
    try:
        with _open_binary(path, compression) as (stream, total):
            records, read, complete = _count_records(stream, limit)
    except _READ_ERRORS as exc:
        return None, f"rows not counted: {_short_error(exc)}"
    if complete:
        return max(records - 1, 0), None
    if total is None:
        return None, f"rows not counted: more than {records - 1:,} in the first {_human_size(read)} uncompressed"
    estimate = int((records - 1) * total / max(read, 1))
    return estimate, f"row count estimated from the first {_human_size(read)}"


@contextmanager
def _open_binary(path: Path, compression: str) -> Iterator[tuple[IO[bytes], int | None]]:
    """The uncompressed bytes of a (possibly compressed) file, with their total size when known."""
    if compression == "zip":
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX")]
            if len(members) != 1:
                raise ValueError(f"zip holds {len(members)} files, expected one")
            with archive.open(members[0]) as stream:
                yield stream, members[0].file_size
        return
    openers = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}
    if compression in openers:
        with openers[compression](path, "rb") as stream:
            yield stream, None
        return
    with open(path, "rb") as stream:
        yield stream, path.stat().st_size


def _count_records(stream: IO[bytes], limit: int) -> tuple[int, int, bool]:
    """CSV records in a byte stream: line breaks outside quoted fields, plus an unterminated last line.

    Returns (records, bytes read, whether the whole stream was read). Quoted text
    fields may hold line breaks, so a plain line count would overcount them;
    chunks without quotes take the fast path.
    """
    records = 0
    read = 0
    in_quotes = False
    last = b"\n"
    while read < limit:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return records + (last != b"\n"), read, True
        read += len(chunk)
        last = chunk[-1:]
        if not in_quotes and b'"' not in chunk:
            records += chunk.count(b"\n")
            continue
        data = np.frombuffer(chunk, dtype=np.uint8)
        quotes = np.cumsum(data == ord('"'), dtype=np.int64)
        newlines = np.flatnonzero(data == ord("\n"))
        inside = (quotes[newlines] + in_quotes) % 2
        records += int(newlines.size - inside.sum())
        in_quotes = bool((int(quotes[-1]) + in_quotes) % 2)
    # The limit may fall exactly at the end of the stream.
    if not stream.read(1):
        return records + (last != b"\n"), read, True
    return records, read, False


def _describe_json(path: Path, info: FileInfo) -> None:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        _describe_json_lines(path, info)
        return
    if info.size_bytes > JSON_PARSE_BYTES:
        info.note = f"large JSON file (over {_human_size(JSON_PARSE_BYTES)}), not parsed"
        info.preview = _text_head(path)
        return
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        info.note = f"unreadable JSON: {_short_error(exc)}"
        return
    if isinstance(data, list):
        info.rows = len(data)
        records = [r for r in data[:HEAD_ROWS] if isinstance(r, dict)]
        if records:
            _fill_from_records(records, info)
            info.note = f"JSON list of {len(data):,} records"
        else:
            info.note = f"JSON list of {len(data):,} values"
            info.preview = _cut(json.dumps(data[:PREVIEW_ROWS], default=str), 3 * TEXT_LINE_CHARS)
    elif isinstance(data, dict):
        keys = list(data)
        shown = ", ".join(_cut(str(k), CELL_CHARS) for k in keys[:PREVIEW_COLUMNS])
        more = f", ... ({len(keys):,} keys)" if len(keys) > PREVIEW_COLUMNS else ""
        info.note = f"JSON object with keys: {shown}{more}"
    else:
        info.note = f"JSON {type(data).__name__}"
        info.preview = _cut(json.dumps(data, default=str), TEXT_LINE_CHARS)


def _describe_json_lines(path: Path, info: FileInfo) -> None:
    records: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if len(records) >= HEAD_ROWS:
                    break
                if line.strip():
                    value = json.loads(line)
                    if isinstance(value, dict):
                        records.append(value)
        with _open_binary(path, "") as (stream, _):
            # JSON cannot hold raw line breaks inside strings, so records are lines.
            count, _, complete = _count_lines(stream)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        info.note = f"unreadable JSON lines: {_short_error(exc)}"
        return
    info.rows = count if complete else None
    if records:
        _fill_from_records(records, info)


def _fill_from_records(records: list[dict[str, Any]], info: FileInfo) -> None:
    frame = pd.DataFrame.from_records(records)
    info.columns = [str(c) for c in frame.columns]
    info.dtypes = {str(c): str(t) for c, t in frame.dtypes.items()}
    info.preview = _frame_preview(frame)


def _describe_text(path: Path, info: FileInfo) -> None:
    try:
        with _open_binary(path, "") as (stream, _):
            lines, _, complete = _count_lines(stream)
    except OSError as exc:
        info.note = f"cannot be read: {_short_error(exc)}"
        return
    info.note = f"{lines:,} lines" if complete else f"more than {lines:,} lines"
    info.preview = _text_head(path)


def _count_lines(stream: IO[bytes]) -> tuple[int, int, bool]:
    lines = 0
    read = 0
    last = b"\n"
    while read < _COUNT_LIMIT[""]:
        chunk = stream.read(_CHUNK)
        if not chunk:
            return lines + (last != b"\n"), read, True
        read += len(chunk)
        lines += chunk.count(b"\n")
        last = chunk[-1:]
    return lines, read, False


def _text_head(path: Path) -> str | None:
    try:
        # A bounded read: the first "line" of a file may be hundreds of megabytes.
        with open(path, encoding="utf-8", errors="replace") as handle:
            start = handle.read(64 * 1024)
    except OSError:
        return None
    lines = [_cut(line, TEXT_LINE_CHARS) for line in start.splitlines()[:PREVIEW_ROWS]]
    return "\n".join(lines) or None


def _describe_archive(path: Path, info: FileInfo) -> None:
    name = path.name.lower()
    if not name.endswith(".zip"):
        info.note = "compressed archive (members not listed)"
        return
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        info.note = f"unreadable zip: {_short_error(exc)}"
        return
    exts = Counter(_extension(m.filename) for m in members)
    unpacked = sum(m.file_size for m in members)
    info.n_files = len(members)
    if members:
        info.note = f"zip of {len(members):,} files ({_ext_summary(exts)}), {_human_size(unpacked)} unpacked"
    else:
        info.note = "empty zip"
    if len(members) <= PREVIEW_ROWS:
        info.preview = "\n".join(m.filename for m in members) or None


# ---------------------------------------------------------------- small helpers


def text_table_separator(name: str) -> str | None:
    """The separator of a CSV or TSV table (compressed or not) by its file name; None for other files."""
    return _TABLE_SUFFIXES.get(_table_suffix(name.lower()))


def _table_suffix(name: str) -> str:
    """".csv" or ".tsv" for a (possibly compressed) table name such as en_train.csv.zip."""
    path = Path(name)
    if path.suffix in _COMPRESSION_SUFFIXES:
        path = Path(path.stem)
    return path.suffix


def _compression_of(name: str) -> str:
    return _COMPRESSION_SUFFIXES.get(Path(name.lower()).suffix, "")


def _kind_of(name: str) -> FileKind:
    lower = name.lower()
    suffix = Path(lower).suffix
    if _table_suffix(lower) in _TABLE_SUFFIXES or suffix in _COLUMNAR_SUFFIXES:
        return "table"
    if suffix in _JSON_SUFFIXES:
        return "json"
    if suffix in _TEXT_SUFFIXES:
        return "text"
    if suffix in _IMAGE_SUFFIXES:
        return "image"
    if suffix in _AUDIO_SUFFIXES:
        return "audio"
    if suffix in _ARCHIVE_SUFFIXES:
        return "archive"
    return "other"


def _extension(name: str) -> str:
    return Path(name).suffix.lower() or "no extension"


def _ext_summary(exts: Counter[str], top: int = 4) -> str:
    common = exts.most_common(top)
    if len(common) == 1:
        return common[0][0]
    text = ", ".join(f"{ext} {count:,}" for ext, count in common)
    if len(exts) > top:
        text += f", {len(exts) - top} other types"
    return text


def _relative(path: Path, data_dir: Path) -> str:
    return path.relative_to(data_dir).as_posix()


def _human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return _cut(" ".join(str(value).split()), CELL_CHARS)


def _frame_preview(frame: pd.DataFrame) -> str:
    head = frame.iloc[:PREVIEW_ROWS, :PREVIEW_COLUMNS].astype(object)
    cut = pd.DataFrame(
        [[_cell(v) for v in row] for row in head.itertuples(index=False, name=None)],
        columns=[_cell(c) for c in head.columns],
    )
    return cut.to_csv(index=False, lineterminator="\n").rstrip("\n")


def _short_error(exc: BaseException) -> str:
    return _cut(" ".join(str(exc).split()) or type(exc).__name__, 200)


def _short_line(info: FileInfo) -> str:
    details = [info.kind, _human_size(info.size_bytes)]
    if info.rows is not None:
        details.append(_plural(info.rows, "row"))
    if info.columns is not None:
        details.append(_plural(len(info.columns), "column"))
    path = info.path + ("/" if info.kind == "directory" else "")
    line = f"- {path} ({', '.join(details)})"
    if info.note:
        line += f": {info.note}"
    return line


def _full_block(info: FileInfo, only_here: list[str] | None = None) -> str:
    lines = [_short_line(info)]
    if info.columns:
        lines.append("  columns: " + _columns_text(info, only_here=only_here or []))
    if info.preview:
        label = "first rows" if info.columns else "first lines"
        lines.append(f"  {label}:")
        lines.extend("    " + line for line in info.preview.splitlines())
    return "\n".join(lines)


def _columns_text(info: FileInfo, shown: int = 30, only_here: Sequence[str] = (), named: int = 10) -> str:
    """The first `shown` columns with their types; of the rest, a count by type, and by name
    those in `only_here` (columns no other table has, such as the target)."""
    columns = info.columns or []
    dtypes = info.dtypes or {}

    def label(column: str) -> str:
        return f"{_cut(column, CELL_CHARS)} ({dtypes[column]})" if column in dtypes else _cut(column, CELL_CHARS)

    text = ", ".join(label(c) for c in columns[:shown])
    if len(columns) > shown:
        rest = Counter(dtypes.get(c, "?") for c in columns[shown:])
        kinds = ", ".join(f"{n} {t}" for t, n in rest.most_common())
        text += f", ... and {len(columns) - shown} more ({kinds})"
        distinct = [c for c in columns[shown:] if c in set(only_here)]
        if distinct:
            names = ", ".join(label(c) for c in distinct[:named])
            extra = f" and {len(distinct) - named} more" if len(distinct) > named else ""
            text += f"; among them {names}{extra}, which no other table has"
    return text
