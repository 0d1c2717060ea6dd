"""Live progress: the terminal table, and the plain lines written where there is no terminal."""

from __future__ import annotations

import io
import logging

from rich.console import Console

from gome_agent.views.progress import Progress, headline, table, trace_line
from gome_agent.views.runview import RunView
from tests.views.test_runview import shared_run


def test_headline_and_trace_line_name_the_best_and_every_trace(tmp_path_factory):
    view = RunView.load(shared_run(tmp_path_factory))
    text = headline(view)
    assert f"best {view.best.score:.6g} (trace {view.best.trace}, step {view.best.step})" in text
    assert "LLM calls" in text and "$" in text
    line = trace_line(view)
    assert line.count("accepted)") == len(view.traces) == 2
    assert "t0 " in line and "t1 " in line


def test_terminal_table_has_a_row_per_trace(tmp_path_factory):
    view = RunView.load(shared_run(tmp_path_factory))
    out = io.StringIO()
    Console(file=out, width=160).print(table(view))
    rendered = out.getvalue()
    assert "trace" in rendered and "accepted" in rendered
    assert rendered.count("t0") >= 1 and rendered.count("t1") >= 1
    assert view.task.metric_name in rendered


def test_plain_lines_without_a_terminal(tmp_path_factory, caplog):
    workdir = shared_run(tmp_path_factory)
    with caplog.at_level(logging.INFO, logger="gome_agent.views.progress"):
        with Progress(workdir, console=Console(file=io.StringIO())) as progress:
            progress.update()
            progress.update()  # nothing changed and the interval has not passed: no new line
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress:")]
    assert len(lines) == 2  # the first update and the final one on exit
    assert "left; best" in lines[0]


def test_live_display_redraws_the_table(tmp_path_factory):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    with Progress(shared_run(tmp_path_factory), console=console) as progress:
        assert progress.live
        progress.update()
    assert "accepted" in out.getvalue()
