"""Preparing the offline benchmark: each competition's folder and its leaderboard.

`prepare(out_dir)` writes `<out_dir>/<id>/` for every registered competition
(or those named in `only`): `public/` and `private/` from the data builder,
then `leaderboard.csv` and `leaderboard_meta.json` from the reference
solutions. A competition whose files are all there is left alone; one with a
file missing is reported and rebuilt. `load_competition` (from
`competitions.py`) opens a prepared folder for grading.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from pydantic import ValidationError

from gome_agent.bench.competitions import (
    COMPETITIONS,
    DEFAULT_DATA_DIR,
    Competition,
    build_competition,
    get_spec,
    load_competition,
)
from gome_agent.bench.leaderboard import LeaderboardMeta, build_leaderboard

__all__ = ["DEFAULT_DATA_DIR", "load_competition", "missing_files", "prepare"]

log = logging.getLogger(__name__)


def missing_files(competition: Competition, *, leaderboards: bool = True) -> list[Path]:
    """The files of a prepared competition that are not there (the leaderboard's only if asked)."""
    expected = competition.data_files() + (competition.leaderboard_files() if leaderboards else [])
    return [path for path in expected if not path.is_file()]


def _board_problem(competition: Competition, size: int) -> str:
    """Why the leaderboard must be (re)built; empty when it is there with `size` rows."""
    absent = [p.name for p in competition.leaderboard_files() if not p.is_file()]
    if absent:
        return f"{', '.join(absent)} missing"
    try:
        built = LeaderboardMeta.model_validate_json(competition.leaderboard_meta_path.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        return f"{competition.leaderboard_meta_path.name} is unreadable ({exc.__class__.__name__})"
    if built.n_teams != size:
        return f"the leaderboard has {built.n_teams} teams, {size} asked for"
    return ""


def _leaderboard_size(nominal: int, scale: float) -> int:
    # Two rows at least: the leaderboard's direction is read from its first and last rows.
    return max(2, round(nominal * scale))


def prepare(out_dir: Path, *, only: list[str] | None = None, leaderboards: bool = True, force: bool = False,
            leaderboard_scale: float = 1.0) -> list[Path]:
    """Build the benchmark's competitions under `out_dir`; return their folders in registry order.

    `force` rebuilds complete competitions too. `leaderboard_scale` shrinks every
    leaderboard (tests use it); the default builds the sizes the registry names.
    """
    if leaderboard_scale <= 0:
        raise ValueError(f"leaderboard_scale must be positive, not {leaderboard_scale}")
    specs = [get_spec(cid) for cid in only] if only is not None else list(COMPETITIONS.values())
    folders = []
    for spec in specs:
        competition = Competition(spec, out_dir / spec.id)
        absent = missing_files(competition, leaderboards=False)
        rebuild = force or bool(absent)
        if absent and not force and competition.root.exists():
            log.warning("%s: %s missing, rebuilding the competition", spec.id,
                        ", ".join(str(p.relative_to(competition.root)) for p in absent))
        if rebuild:
            started = time.perf_counter()
            for stale in (competition.public_dir, competition.private_dir):
                shutil.rmtree(stale, ignore_errors=True)
            build_competition(spec, competition.root)
            log.info("%s: data written in %.1f s", spec.id, time.perf_counter() - started)
        size = _leaderboard_size(spec.leaderboard_size, leaderboard_scale)
        board_stale = leaderboards and not rebuild and _board_problem(competition, size)
        if board_stale:
            log.info("%s: %s; building the leaderboard", spec.id, board_stale)
        if leaderboards and (rebuild or board_stale):
            meta = build_leaderboard(competition, size)
            log.info("%s: leaderboard of %d reference solutions", spec.id, meta.n_teams)
        if not rebuild and not board_stale:
            log.info("%s: already prepared in %s", spec.id, competition.root)
        folders.append(competition.root)
    return folders
