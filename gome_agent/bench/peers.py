"""A peer agent in `gome bench run`: AIDE (the `aideml` package) on the same competitions, model and budget.

AIDE runs from its own virtual environment, made once from the package index and cached (gome
never imports it), as a subprocess whose whole process group is killed when the run's budget is
spent. Its submission is put where gome's runs put theirs (`<workdir>/submission/submission.csv`)
so that `compare` grades both the same way.

What aideml 0.2.2 leaves on disk: every solution it runs writes `working/submission.csv` in its
workspace (each node overwrites the previous one's), and after each node it rewrites
`logs/<exp>/journal.json` (the nodes with their creation time, whether AIDE judged them buggy and
the metric they reported). While AIDE runs, the submission is copied aside whenever a node that
wrote it enters the journal; the one graded is that of the best node AIDE judged good, else the
last submission AIDE left.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock
from pydantic import BaseModel, ConfigDict

from gome_agent import jsonl
from gome_agent.bench.competitions import Competition
from gome_agent.errors import ConfigError, GomeError
from gome_agent.execution.sandbox import die_with_parent
from gome_agent.llm.config import LLMConfig
from gome_agent.llm.providers import read_api_key

log = logging.getLogger(__name__)

AIDE = "aide"  # its strategy name in `gome bench run --strategies`
AIDE_VERSION = "0.2.2"
# aideml's own runtime requirements as its 0.2.2 metadata pins them, and lightgbm, the one learner of
# its requirement list that its prompt names and that is light. The rest of that list (torch,
# torchtext, transformers, tensorpack, streamlit, ...: several GB, only for the solutions it may
# write) is left out; `--aide-venv` can point at a full `pip install aideml` instead.
AIDE_REQUIREMENTS = (
    "black==24.3.0", "funcy==2.0", "humanize==4.8.0", "jsonschema==4.19.2", "numpy==1.26.2", "openai>=1.69.0",
    "anthropic>=0.20.0", "pandas==2.1.4", "requests>=2.32.4", "scikit-learn==1.5.0", "rich==13.7.0",
    "scipy==1.11.4", "dataclasses_json>=0.6.4", "omegaconf>=2.3.0", "loguru==0.7.2", "shutup>=0.2.0",
    "tqdm==4.66.3", "coolname>=2.2.0", "igraph>=0.11.3", "genson>=1.2.0", "backoff", "python-dotenv",
    "lightgbm",
)
DEFAULT_AIDE_VENV = Path.home() / ".cache" / "gome-agent" / "peers" / f"aide-{AIDE_VERSION}"
AIDE_MAX_STEPS = 100_000  # AIDE stops at its step count; the budget is what stops it here, as it stops gome
ENV_RECORD = "gome-peer.json"
RUN_RECORD = "peer.json"
INSTALL_TIMEOUT_S = 1800.0
KILL_GRACE_S = 3.0
POLL_S = 1.0

# Variables AIDE's backends read; a run passes only the ones its LLM settings give.
_LLM_VARIABLES = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
                  "OPENROUTER_API_KEY", "GEMINI_API_KEY")
# aideml 0.2.2 picks its backend from the model's name (aide/backend/__init__.py, backend_openai.py).
_AIDE_OPENAI_NAME = re.compile(r"^(gpt-.*|o\d+(-.*)?|codex-mini-latest)$")
_AIDE_OPENAI_ONLY = re.compile(r"^(gpt-|o\d-|codex-mini-latest$)")  # sent to api.openai.com whatever the base URL


class PeerError(GomeError):
    """A peer agent could not be installed or started."""


class PeerEnv(BaseModel):
    """`gome-peer.json` in a peer's virtual environment: what gome installed, and whether it finished."""

    package: str
    version: str
    requirements: list[str]
    complete: bool


class PeerRunRecord(BaseModel):
    """`peer.json` in a peer's run folder: how it was started and how it ended (no API keys)."""

    peer: str
    version: str | None
    command: list[str]
    llm_variables: dict[str, str]  # what AIDE's backend was pointed at (keys shown as the variable only)
    time_limit_s: float
    elapsed_s: float
    returncode: int | None
    timed_out: bool
    nodes: int
    good_nodes: int
    submission_source: str
    reason: str


@dataclass(frozen=True)
class PeerRun:
    """What a peer's run gives `compare` (its submission is in `<workdir>/submission/`)."""

    steps: int
    reason: str


@dataclass(frozen=True)
class Finished:
    """How a command run under a deadline ended."""

    returncode: int | None  # None when it was killed: at the time limit, or when told to stop
    timed_out: bool
    elapsed_s: float


class AideMetric(BaseModel):
    """A node's metric in AIDE's journal (`maximize` is the direction the model reported)."""

    model_config = ConfigDict(extra="ignore")

    value: float | None = None
    maximize: bool | None = None


class AideNode(BaseModel):
    """The fields of one node of AIDE's `journal.json` that collecting its submission needs."""

    model_config = ConfigDict(extra="ignore")

    id: str
    step: int | None = None
    ctime: float
    is_buggy: bool | None = None
    metric: AideMetric | None = None

    @property
    def reported(self) -> float | None:
        """The metric it reported when AIDE judged it good (not buggy, with a metric), else None."""
        return self.metric.value if self.is_buggy is False and self.metric is not None else None

    @property
    def rank(self) -> float:
        """Its reported metric signed so that higher is better (AIDE's Journal.get_best_node order)."""
        value = self.reported
        if value is None:
            return float("-inf")
        return -value if self.metric is not None and self.metric.maximize is False else value


# The virtual environment ---------------------------------------------------------------------------


def installed_version(venv: Path) -> str | None:
    """The aideml version installed in `venv`, read from its metadata folder's name."""
    info = next(iter(venv.glob("lib/python*/site-packages/aideml-*.dist-info")), None)
    return None if info is None else info.name.removeprefix("aideml-").removesuffix(".dist-info")


def _install_step(cmd: list[str], what: str, venv: Path) -> None:
    hint = (f"pip needs the package index once (is the network reachable?); or pass --aide-venv to a virtual "
            f"environment where `pip install aideml=={AIDE_VERSION}` was run")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerError(f"could not {what} for AIDE in {venv}: {exc}; {hint}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise PeerError(f"could not {what} for AIDE in {venv}: `{' '.join(cmd)}` exited with code "
                        f"{done.returncode}:\n{tail}\n{hint}")


def ensure_aide_venv(venv: Path = DEFAULT_AIDE_VENV) -> Path:
    """The `aide` command of `venv`, installing aideml there first unless it is already there.

    A venv with `bin/aide` and no `gome-peer.json` is one the user made and is used as it is; one
    whose install gome started but did not finish is completed (pip install is idempotent).
    """
    venv = venv.absolute()  # AIDE runs in its own folder, and its tracebacks name this path
    aide = venv / "bin" / "aide"
    record_path = venv / ENV_RECORD
    venv.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(venv.parent / f".{venv.name}.lock")):  # two benchmarks started at once install once
        record = PeerEnv.model_validate_json(record_path.read_text(encoding="utf-8")) if record_path.is_file() else None
        if aide.is_file() and (record is None or record.complete):
            return aide
        log.info("installing aideml==%s into %s (once; a few minutes)", AIDE_VERSION, venv)
        if not (venv / "pyvenv.cfg").is_file():
            _install_step([sys.executable, "-m", "venv", str(venv)], "create a virtual environment", venv)
        record = PeerEnv(package="aideml", version=AIDE_VERSION, requirements=list(AIDE_REQUIREMENTS), complete=False)
        jsonl.write_json(record_path, record)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        # --no-deps: aideml's declared requirements include several GB of deep-learning packages (see above).
        _install_step([*pip, "--no-deps", f"aideml=={AIDE_VERSION}"], f"install aideml=={AIDE_VERSION}", venv)
        _install_step([*pip, *AIDE_REQUIREMENTS], "install aideml's requirements", venv)
        if not aide.is_file():
            raise PeerError(f"aideml=={AIDE_VERSION} was installed into {venv} but {aide} is missing")
        jsonl.write_json(record_path, record.model_copy(update={"complete": True}))
    return aide


# How AIDE is started ---------------------------------------------------------------------------------


def aide_llm_variables(llm: LLMConfig) -> dict[str, str]:
    """The environment variables that point AIDE's backend at the run's LLM.

    aideml 0.2.2 reads no base URL or key setting of its own: it picks its backend from the model's
    name and reads OPENAI_BASE_URL / OPENAI_API_KEY (or ANTHROPIC_API_KEY). ConfigError for settings
    it cannot follow.
    """
    model = llm.model
    if llm.provider == "openai-compatible":
        if _AIDE_OPENAI_ONLY.match(model) or model.startswith(("claude-", "gemini-")):
            raise ConfigError(
                f"AIDE cannot reach the model {model!r} at {llm.base_url}: aideml {AIDE_VERSION} sends models named "
                "gpt-..., o1-..., claude-... or gemini-... to their vendors' own APIs whatever OPENAI_BASE_URL says; "
                "serve the model under another name (llama-server's --alias)"
            )
        return {"OPENAI_BASE_URL": str(llm.base_url), "OPENAI_API_KEY": read_api_key(llm)}
    if llm.provider == "openai":
        if llm.base_url or not _AIDE_OPENAI_NAME.match(model):
            raise ConfigError(
                f"AIDE runs with provider 'openai' only for OpenAI's own models at api.openai.com (gpt-..., o3, ...), "
                f"not {model!r}{' at ' + llm.base_url if llm.base_url else ''}: use --provider openai-compatible "
                "with --base-url for another server"
            )
        return {"OPENAI_API_KEY": read_api_key(llm)}
    if not model.startswith("claude-"):
        raise ConfigError(f"AIDE sends only models named claude-... to Anthropic, not {model!r}")
    variables = {"ANTHROPIC_API_KEY": read_api_key(llm)}
    if llm.base_url:
        variables["ANTHROPIC_BASE_URL"] = llm.base_url  # read by the anthropic SDK that AIDE uses
    return variables


def aide_command(aide: Path, *, competition: Competition, llm: LLMConfig, aide_dir: Path, exec_timeout_s: float,
                 exp_name: str) -> list[str]:
    """AIDE's command line: its settings as OmegaConf `key=value` arguments (aide/utils/config.yaml)."""
    settings = {
        "data_dir": competition.public_dir.resolve(),
        "desc_file": competition.description_path.resolve(),
        "log_dir": (aide_dir / "logs").resolve(),
        "workspace_dir": (aide_dir / "workspaces").resolve(),
        "exp_name": exp_name,
        "exec.timeout": int(exec_timeout_s),
        "agent.steps": AIDE_MAX_STEPS,
        "agent.code.model": llm.model,
        "agent.feedback.model": llm.model,
        "report.model": llm.model,
        "generate_report": False,  # the report is written after the last step, which a budget-bound run never reaches
    }
    if llm.temperature is not None:
        settings["agent.code.temp"] = llm.temperature
        settings["agent.feedback.temp"] = llm.temperature
    return [str(aide), *(f"{key}={value}" for key, value in settings.items())]


def aide_environment(llm: LLMConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without any LLM variable of its own, plus the run's."""
    env = {key: value for key, value in environ.items() if key not in _LLM_VARIABLES}
    env.update(aide_llm_variables(llm))
    env["PYTHONUNBUFFERED"] = "1"  # its log is read while it runs and after it is killed
    return env


# Running it under the budget -------------------------------------------------------------------------


def _kill_group(process: subprocess.Popen[bytes], grace_s: float) -> None:
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return  # nothing of the group is left
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass


def run_with_deadline(cmd: list[str], *, env: Mapping[str, str], cwd: Path, log_path: Path, time_limit_s: float,
                      tick: Callable[[], bool] = lambda: False, tick_s: float = POLL_S,
                      grace_s: float = KILL_GRACE_S) -> Finished:
    """Run `cmd` in its own process group for at most `time_limit_s`, calling `tick` about every
    `tick_s` (True from it stops the run). At the end the whole group is killed, also when the
    command exited: its solutions' processes may have outlived it."""
    start = time.monotonic()
    deadline = start + time_limit_s
    with log_path.open("ab") as log_file:
        try:
            process = subprocess.Popen(cmd, cwd=cwd, env=dict(env), stdout=log_file, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)
        except OSError as exc:
            raise PeerError(f"could not start {cmd[0]}: {exc}") from exc
    stopped = False
    try:
        while process.poll() is None and time.monotonic() < deadline and not stopped:
            stopped = tick()
            try:
                process.wait(timeout=max(0.0, min(tick_s, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                pass
        returncode = process.poll()
    finally:
        _kill_group(process, grace_s)
    return Finished(returncode=returncode, timed_out=returncode is None and not stopped,
                    elapsed_s=time.monotonic() - start)


def _log_tail(log_path: Path, size: int = 65536) -> str:
    try:
        with log_path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def aide_crash(log_path: Path, aide: Path) -> str | None:
    """The exception line of a traceback that AIDE's own process printed, once it is complete.

    After such a crash aideml 0.2.2 does not exit: Python waits at exit for its interpreter's worker,
    a non-daemon process that never ends, so the run would sit idle until the time limit.
    """
    text = _log_tail(log_path)
    at = text.rfind(f'Traceback (most recent call last):\n  File "{aide}"')
    if at < 0:
        return None
    # The frames are indented; the first line after them that is not is the exception.
    return next((line.strip() for line in text[at:].splitlines()[1:] if line.strip() and not line[0].isspace()), None)


# Its submission ----------------------------------------------------------------------------------------


def _last(paths: list[Path]) -> Path | None:
    return sorted(paths)[-1] if paths else None


def read_journal(aide_dir: Path) -> list[AideNode]:
    """The nodes of AIDE's journal ([] before the first node, or while it is being rewritten)."""
    path = _last(list((aide_dir / "logs").glob("*/journal.json")))
    if path is None:
        return []
    try:
        nodes = json.loads(path.read_text(encoding="utf-8"))["nodes"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [AideNode.model_validate(node) for node in nodes]


def working_submission(aide_dir: Path) -> Path | None:
    """The submission.csv in AIDE's working folder, as the last solution that wrote one left it."""
    return _last([p for p in (aide_dir / "workspaces").glob("*/working/submission.csv") if p.is_file()])


class SubmissionWatcher:
    """Copies AIDE's working submission aside, as `<store>/<node id>.csv`, for each journaled node that wrote it."""

    def __init__(self, aide_dir: Path, store: Path) -> None:
        self.aide_dir = aide_dir
        self.store = store

    def poll(self) -> None:
        nodes = read_journal(self.aide_dir)
        submission = working_submission(self.aide_dir)
        if not nodes or submission is None:
            return
        last = nodes[-1]
        kept = self.store / f"{last.id}.csv"
        try:
            # Written after the node was created: by this node's run, not left by an earlier one.
            if not kept.exists() and submission.stat().st_mtime >= last.ctime:
                self.store.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(submission, kept)
        except OSError as exc:  # AIDE may be rewriting it; the next poll tries again
            log.debug("could not keep AIDE's submission of node %s: %s", last.id, exc)


def collect_aide_submission(aide_dir: Path, store: Path, dest: Path) -> tuple[list[AideNode], str]:
    """Put AIDE's submission at `dest`: that of the best node it judged good that left one, else the
    last one it left. Returns the journal's nodes and where the submission came from."""
    nodes = read_journal(aide_dir)
    for node in sorted((n for n in nodes if n.reported is not None), key=lambda n: n.rank, reverse=True):
        kept = store / f"{node.id}.csv"
        if kept.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(kept, dest)
            return nodes, f"node {node.step}'s (the best node AIDE judged good with one; metric {node.reported:g})"
    left = working_submission(aide_dir)
    if left is not None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(left, dest)
        return nodes, "the last submission.csv AIDE left (no node it judged good left one)"
    return nodes, "none (AIDE wrote no submission.csv)"


def _last_line(log_path: Path) -> str:
    lines = [line.strip() for line in _log_tail(log_path).splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def run_aide(*, aide: Path, competition: Competition, llm: LLMConfig, workdir: Path, time_limit_s: float,
             max_run_s: float, seed: int) -> PeerRun:
    """One AIDE run in `workdir` under a hard `time_limit_s`; its submission ends in `workdir/submission/`."""
    if workdir.exists():
        log.info("%s: an AIDE run cut short before its result was recorded starts over (AIDE cannot resume)", workdir)
        shutil.rmtree(workdir)
    aide_dir = workdir / "aide"
    aide_dir.mkdir(parents=True)
    store = aide_dir / "submissions"
    cmd = aide_command(aide, competition=competition, llm=llm, aide_dir=aide_dir, exec_timeout_s=max_run_s,
                       exp_name=f"seed{seed}")
    variables = aide_llm_variables(llm)
    watcher = SubmissionWatcher(aide_dir, store)
    log_path = aide_dir / "aide.log"

    def tick() -> bool:
        watcher.poll()
        return aide_crash(log_path, aide) is not None

    finished = run_with_deadline(cmd, env=aide_environment(llm, os.environ), cwd=aide_dir, log_path=log_path,
                                 time_limit_s=time_limit_s, tick=tick)
    watcher.poll()
    nodes, source = collect_aide_submission(aide_dir, store, workdir / "submission" / "submission.csv")
    good = sum(n.reported is not None for n in nodes)
    crash = aide_crash(log_path, aide)
    if finished.timed_out:
        ending = f"time limit: AIDE stopped after {finished.elapsed_s:.0f} s"
    elif finished.returncode == 0:
        ending = "AIDE finished"
    elif crash is not None:
        ending = f"AIDE crashed after {finished.elapsed_s:.0f} s: {crash[:300]}"
    else:
        ending = f"AIDE exited with code {finished.returncode}: {_last_line(log_path)}"
    reason = f"{ending}; {len(nodes)} node(s), {good} judged good by AIDE; submission: {source}"
    record = PeerRunRecord(
        peer=AIDE, version=installed_version(aide.parent.parent), command=cmd,
        llm_variables={k: (v if k.endswith("BASE_URL") else f"${k}") for k, v in variables.items()},
        time_limit_s=time_limit_s, elapsed_s=round(finished.elapsed_s, 1), returncode=finished.returncode,
        timed_out=finished.timed_out, nodes=len(nodes), good_nodes=good, submission_source=source, reason=reason,
    )
    jsonl.write_json(workdir / RUN_RECORD, record)
    log.info("AIDE on %s: %s", competition.id, reason)
    return PeerRun(steps=len(nodes), reason=reason)
