"""The `gome` command."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from gome_agent import __version__
from gome_agent.config import build_config, load_config_file, parse_duration
from gome_agent.errors import ConfigError, GomeError
from gome_agent.strategies import STRATEGIES

log = logging.getLogger("gome")


def _setup_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=False)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in ("httpx", "httpx2", "openai", "anthropic", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags the user gave, as a nested settings mapping."""
    out: dict[str, Any] = {"data_dir": args.data_dir, "workdir": args.workdir}
    llm: dict[str, Any] = {}
    optimizer: dict[str, Any] = {}
    execution: dict[str, Any] = {}
    if args.time_limit is not None:
        out["time_limit_s"] = parse_duration(args.time_limit)
    if args.prompts_dir is not None:
        out["prompts_dir"] = args.prompts_dir
    if args.higher_is_better is not None:
        out["higher_is_better"] = args.higher_is_better
    for flag, key in (("model", "model"), ("provider", "provider"), ("base_url", "base_url"), ("api", "api"),
                      ("max_run_cost_usd", "max_run_cost_usd"), ("max_run_tokens", "max_run_tokens")):
        if getattr(args, flag) is not None:
            llm[key] = getattr(args, flag)
    if args.traces is not None:
        out["traces"] = args.traces
    if args.strategy is not None:
        out["strategy"] = args.strategy
    if args.max_steps is not None:
        optimizer["max_steps"] = args.max_steps
    if args.no_momentum:
        optimizer["momentum"] = False
    if args.direct:
        optimizer["structured_gradient"] = False
    if args.sandbox is not None:
        execution["sandbox"] = args.sandbox
    if args.no_network:
        execution["network"] = False
    if args.python is not None:
        execution["python"] = args.python
    if args.max_run_minutes is not None:
        execution["max_run_minutes"] = args.max_run_minutes
    if args.memory_limit_gb is not None:
        execution["memory_limit_gb"] = args.memory_limit_gb
    if args.scoring is not None:
        out["validation"] = {"scoring": args.scoring}
    for key, section in (("llm", llm), ("optimizer", optimizer), ("execution", execution)):
        if section:
            out[key] = section
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from gome_agent.run.coordinator import resume, run

    if args.resume is not None:
        given = [f for f in ("data_dir", "workdir", "config", "model", "provider", "base_url", "traces",
                             "max_run_cost_usd", "max_run_tokens") if getattr(args, f)]
        if given:
            raise ConfigError(f"--resume continues a run with its recorded settings; drop {', '.join('--' + g.replace('_', '-') for g in given)}")
        summary = resume(args.resume, time_limit_s=parse_duration(args.time_limit) if args.time_limit else None)
    else:
        if args.data_dir is None or args.workdir is None:
            raise ConfigError("gome run needs --data-dir and --workdir (or --resume OUT to continue a run)")
        file_values = load_config_file(args.config) if args.config else {}
        summary = run(build_config(file_values, _run_overrides(args)))
    score = "none" if summary.best_score is None else f"{summary.best_score:.6g}"
    print(f"run finished ({summary.reason}); {summary.steps} step(s); best validation score: {score}")
    if summary.submission is not None:
        print(f"submission: {summary.submission}")
    else:
        print("no submission could be written", file=sys.stderr)
    print(f"run folder: {summary.workdir}")
    return 0 if summary.submission is not None and not summary.fatal else 1


def cmd_prompts_check(args: argparse.Namespace) -> int:
    from gome_agent.strategies.prompts import DEFAULT_DIR, check_prompts

    checked, problems = check_prompts(args.dir)
    for problem in problems:
        print(f"error: {problem}")
    overridden = sorted(p.stem for p in args.dir.glob("*.j2"))
    where = "the defaults" if args.dir.resolve() == DEFAULT_DIR.resolve() else f"{len(overridden)} overridden in {args.dir}"
    print(f"checked {len(checked)} templates ({where}): "
          f"{'no problems' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


def cmd_prompts_export(args: argparse.Namespace) -> int:
    from gome_agent.strategies.prompts import DEFAULT_DIR

    args.dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for src in sorted(DEFAULT_DIR.glob("*.j2")):
        dst = args.dir / src.name
        if dst.exists() and not args.force:
            print(f"kept {dst} (exists; --force overwrites)")
            continue
        shutil.copyfile(src, dst)
        written += 1
    print(f"wrote {written} template(s) to {args.dir}; edit them and pass --prompts-dir {args.dir}")
    return 0


def cmd_bench_overhead(args: argparse.Namespace) -> int:
    from gome_agent.bench.overhead import main as overhead_main

    return overhead_main(steps=args.steps, out=args.out)


def cmd_bench_scheduler(args: argparse.Namespace) -> int:
    from gome_agent.bench.scheduler import main as scheduler_main

    return scheduler_main(run_s=args.run_seconds, llm_delay_s=args.llm_delay, steps=args.steps,
                          traces=args.traces, out=args.out)


def cmd_bench_validation(args: argparse.Namespace) -> int:
    from gome_agent.bench.validation import main as validation_main

    return validation_main(seeds=list(range(args.seeds)), out=args.out)


def cmd_mlebench(args: argparse.Namespace) -> int:
    from gome_agent.mlebench.container import main as container_main

    return container_main(args)


def cmd_register(args: argparse.Namespace) -> int:
    from gome_agent.mlebench.register import register

    registration = register(args.mlebench, force=args.force)
    print(f"registered {len(registration.agent_ids)} agent ids in {registration.folder}: "
          f"{', '.join(registration.agent_ids)}")
    print(f"copied {registration.obfuscated} obfuscated descriptions (for OBFUSCATE=true runs)")
    print("next:")
    for command in registration.next_commands(args.mlebench.resolve()):
        print(f"  {command}")
    return 0


def cmd_export_submissions(args: argparse.Namespace) -> int:
    from gome_agent.mlebench.export import export_submissions, grade

    lines = export_submissions(args.run_group, args.output)
    with_submission = sum(line["submission_path"] is not None for line in lines)
    print(f"wrote {len(lines)} run(s) to {args.output} ({with_submission} with a submission)")
    if args.grade:
        grade(args.output, args.output_dir or args.output.parent, args.data_dir)
    else:
        print(f"grade with: mlebench grade --submission {args.output} --output-dir {args.output.parent}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from gome_agent.views.report import write_report

    print(write_report(args.run, args.out))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from gome_agent.views.runview import RunView

    print(RunView.load(args.run).summary_text())
    return 0


def cmd_export_traces(args: argparse.Namespace) -> int:
    from gome_agent.views.traces_io import export_traces

    print(export_traces(args.run, args.output))
    return 0


def cmd_import_traces(args: argparse.Namespace) -> int:
    from gome_agent.views.traces_io import import_traces

    folders = import_traces(args.file, args.out)
    for folder in folders:
        print(folder)
    print(f"imported {len(folders)} competition(s); see one with: gome report {folders[0]}" if folders else "nothing imported")
    return 0


def cmd_bench_prepare(args: argparse.Namespace) -> int:
    from gome_agent.bench.prepare import DEFAULT_DATA_DIR, prepare

    out = args.out or DEFAULT_DATA_DIR
    only = args.only.split(",") if args.only else None
    folders = prepare(out, only=only, leaderboards=not args.no_leaderboards, force=args.force)
    for folder in folders:
        print(folder)
    print(f"prepared {len(folders)} competition(s) in {out}")
    return 0


def cmd_bench_grade(args: argparse.Namespace) -> int:
    from gome_agent.bench.grading import grade_jsonl
    from gome_agent.bench.prepare import DEFAULT_DATA_DIR

    print(grade_jsonl(args.submission, args.output_dir, args.data_dir or DEFAULT_DATA_DIR))
    return 0


def _sweep_values(args: argparse.Namespace) -> dict[str, Any]:
    """The sweep file's fields (if any), with the flags the user gave on top."""
    from gome_agent.bench.sweep import load_sweep

    values = load_sweep(args.sweep) if args.sweep else {}
    if args.config:  # run settings shared by every run; their LLM part joins the sweep's
        settings = load_config_file(args.config)
        if "time_limit_s" in settings:  # the sweep's budget, unless the sweep file names one
            values.setdefault("time_limit", settings.pop("time_limit_s"))
        values["llm"] = {**settings.pop("llm", {}), **values.get("llm", {})}
        values["settings"] = {**settings, **values.get("settings", {})}
    for flag, key in (("competitions", "competitions"), ("strategies", "strategies"), ("model", "models")):
        if getattr(args, flag):
            values[key] = getattr(args, flag).split(",")
    for flag, key in (("seeds", "seeds"), ("time_limit", "time_limit"), ("data_dir", "data_dir"),
                      ("aide_venv", "aide_venv")):
        if getattr(args, flag) is not None:
            values[key] = getattr(args, flag)
    llm = values.setdefault("llm", {})
    if args.provider:
        llm["provider"] = args.provider
    llm.setdefault("provider", "openai-compatible")
    if args.base_url:
        llm["base_url"] = args.base_url
    resources = values.setdefault("resources", {})
    if args.cpus_per_run is not None:
        resources["cpus"] = args.cpus_per_run
    if args.gpus_per_run is not None:
        resources["gpus"] = args.gpus_per_run
    missing = [f"--{k}" for k, v in (("competitions", "competitions"), ("model", "models"), ("data-dir", "data_dir"))
               if v not in values]
    if missing:
        raise ConfigError(f"gome bench run needs {', '.join(missing)} (or a --sweep file that names them)")
    return values


def cmd_bench_run(args: argparse.Namespace) -> int:
    from gome_agent.bench.compare import bench, summarize_folder
    from gome_agent.bench.executors import LocalExecutor, RayExecutor
    from gome_agent.bench.sweep import RESULTS, Executor, read_results, sweep_spec

    sweep = sweep_spec(_sweep_values(args), source=str(args.sweep) if args.sweep else "the command line")
    executor: Executor = (RayExecutor(args.ray_address, max_retries=args.max_retries) if args.ray_address
                          else LocalExecutor(args.parallel))
    outcome = bench(sweep, out=args.out, executor=executor, storage=args.storage)
    print(f"sweep of {outcome.total} runs: {outcome.skipped} done before, {outcome.finished} done now"
          + (f" ({len(outcome.redone)} started before and left no result)" if outcome.redone else "")
          + f", {len(outcome.failed)} failed, in {outcome.wall_s:.0f} s")
    if read_results(args.out / RESULTS):
        print(summarize_folder(args.out).markdown)
        print(f"results: {args.out / RESULTS}; summary: {args.out / 'summary.md'}")
    if outcome.failed:
        print(f"failed: {', '.join(outcome.failed)} (their errors: {args.out / 'attempts.jsonl'}); "
              "the same command runs them again", file=sys.stderr)
        return 1
    return 0


def cmd_bench_summary(args: argparse.Namespace) -> int:
    from gome_agent.bench.compare import summarize_folder

    print(summarize_folder(args.out).markdown)
    print(f"written: {args.out / 'summary.md'}, {args.out / 'details.json'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gome_agent.bench.demo import demo

    result = demo(args.out, time_limit_s=parse_duration(args.time_limit), model=args.model)
    report = result.report
    score = "none" if report.score is None else f"{report.score:.5g}"
    medal = next((m for m in ("gold", "silver", "bronze") if getattr(report, f"{m}_medal")), None)
    print(f"graded {report.competition_id}: score {score} "
          f"({'valid' if report.valid_submission else 'invalid'} submission; "
          f"{medal + ' medal' if medal else 'no medal'}; {'above' if report.above_median else 'not above'} median)")
    print(f"run folder: {result.summary.workdir}")
    print(f"grading report: {result.report_path}")
    if result.html_report is not None:
        print(f"HTML report: {result.html_report}")
    return 0


def cmd_llm_prepare(args: argparse.Namespace) -> int:
    from gome_agent.llm.local import prepare_local_llm

    binary, weights = prepare_local_llm(args.model)
    print(f"llama-server: {binary}")
    print(f"weights: {weights} (sha256 verified)")
    return 0


def cmd_llm_serve(args: argparse.Namespace) -> int:
    import time

    from gome_agent.llm.local import DEFAULT_CTX_PER_SLOT, prepare_local_llm, start_server

    ctx_per_slot = args.ctx_per_slot or DEFAULT_CTX_PER_SLOT
    binary, weights = prepare_local_llm(args.model)
    with start_server(binary, weights, port=args.port, slots=args.traces, ctx_per_slot=ctx_per_slot,
                      log_path=args.log) as server:
        print(f"serving {server.model} at {server.base_url_openai} (Anthropic API at {server.base_url_anthropic}), "
              f"{args.traces} request(s) at once with {ctx_per_slot} tokens of context each")
        print(f"use: gome run --provider openai-compatible --base-url {server.base_url_openai} --model {server.model} "
              f"--traces {args.traces} ...")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


def _spend_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-run-cost-usd", type=float,
                        help="cap of the run's LLM spend in USD: once reached, the traces take no new step and the "
                        "final selection still runs (llm.max_run_cost_usd)")
    parser.add_argument("--max-run-tokens", type=int,
                        help="the same cap in input and output tokens (llm.max_run_tokens)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gome",
        description="Gome: an MLE agent that optimizes with reasoning as gradient (arXiv 2603.01692).",
    )
    parser.add_argument("--version", action="version", version=f"gome-agent {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="optimize a solution for a competition folder")
    run.add_argument("--data-dir", type=Path, help="competition folder (description.md, data, sample submission)")
    run.add_argument("--workdir", type=Path, help="run folder to create")
    run.add_argument("--resume", type=Path, metavar="OUT", help="continue the interrupted run in OUT with the budget it had left")
    run.add_argument("--time-limit", help="total budget, e.g. 12h, 90m (default 2h)")
    run.add_argument("--model", help="model name (default gpt-5)")
    run.add_argument("--provider", choices=["openai", "anthropic", "openai-compatible"], help="LLM provider (default openai)")
    run.add_argument("--base-url", help="API base URL (required for openai-compatible: vLLM, llama.cpp, Ollama)")
    run.add_argument("--api", choices=["chat", "responses", "messages"], help="wire API (default by provider)")
    run.add_argument("--prompts-dir", type=Path, help="folder of templates that override the defaults by name")
    run.add_argument("--config", type=Path, help="settings file (.toml, .yaml, .json); flags override it")
    direction = run.add_mutually_exclusive_group()
    direction.add_argument("--higher-is-better", dest="higher_is_better", action="store_const", const=True, default=None,
                           help="override the metric direction read from the description")
    direction.add_argument("--lower-is-better", dest="higher_is_better", action="store_const", const=False,
                           help="override the metric direction read from the description")
    run.add_argument("--traces", type=int, help="traces run at once, sharing the success memory (default 3)")
    run.add_argument("--strategy", choices=list(STRATEGIES), help="gome (default), or the tree-search baseline")
    run.add_argument("--max-steps", type=int, help="stop each trace after this many steps")
    run.add_argument("--no-momentum", action="store_true", help="ablation: no success memory (the paper's w/o momentum)")
    run.add_argument("--direct", action="store_true",
                     help="ablation: feedback straight to code, no structured diagnosis (the paper's w/o structured reasoning)")
    run.add_argument("--scoring", choices=["gome", "self-reported"],
                     help="who measures a step's score: gome on rows it holds out (default), or the solution itself")
    run.add_argument("--sandbox", choices=["auto", "namespace", "none"], help="how solutions are isolated")
    run.add_argument("--no-network", action="store_true", help="solutions get no network access")
    run.add_argument("--python", help="interpreter that runs the solutions")
    run.add_argument("--max-run-minutes", type=float, help="longest single solution run")
    run.add_argument("--memory-limit-gb", type=float, help="memory limit of one solution run")
    _spend_flags(run)
    run.set_defaults(func=cmd_run)

    mle = sub.add_parser("mlebench", help="run inside MLE-bench's agent container (start.sh calls it)")
    mle.add_argument("--workdir", type=Path, help="run folder (default $AGENT_DIR/run)")
    mle.add_argument("--time-limit", help="budget (default TIME_LIMIT_SECS)")
    mle.add_argument("--description", type=Path, help="the full instructions to read the task from")
    mle.add_argument("--config", type=Path, help="settings file; flags and the container override it")
    mle.add_argument("--model", help="model name (default gpt-5)")
    mle.add_argument("--provider", choices=["openai", "anthropic", "openai-compatible"], help="LLM provider")
    mle.add_argument("--base-url", help="API base URL (for openai-compatible servers)")
    mle.add_argument("--api", choices=["chat", "responses", "messages"], help="wire API (default by provider)")
    mle.add_argument("--traces", type=int, help="traces run at once (default 3)")
    mle.add_argument("--strategy", choices=list(STRATEGIES), help="gome (default), or the tree-search baseline")
    mle.add_argument("--max-run-minutes", type=float, help="longest single solution run (default: min(60, budget/4))")
    _spend_flags(mle)
    # MLE-bench renders every kwarg as `--key value`, so switches take an optional value.
    mle.add_argument("--no-momentum", nargs="?", const="true", help="ablation: no success memory")
    mle.add_argument("--direct", nargs="?", const="true", help="ablation: no structured diagnosis")
    mle.add_argument("--finalize", action="store_true",
                     help="only put the best submission, code and run record where MLE-bench extracts them")
    mle.set_defaults(func=cmd_mlebench)

    reg = sub.add_parser("register", help="install gome-agent as agents/gome/ of an mle-bench checkout")
    reg.add_argument("mlebench", type=Path, help="root of the mle-bench checkout")
    reg.add_argument("--force", action="store_true", help="replace an existing agents/gome/")
    reg.set_defaults(func=cmd_register)

    export = sub.add_parser("export-submissions", help="submission.jsonl for `mlebench grade` from a run group")
    export.add_argument("run_group", type=Path, help="runs/<run-group> folder written by run_agent.py")
    export.add_argument("-o", "--output", type=Path, required=True, help="submission.jsonl to write")
    export.add_argument("--grade", action="store_true", help="grade right away with the mlebench package")
    export.add_argument("--output-dir", type=Path, help="where --grade writes its report (default: next to -o)")
    export.add_argument("--data-dir", type=Path, help="mle-bench's prepared data (default: its own default)")
    export.set_defaults(func=cmd_export_submissions)

    report = sub.add_parser("report", help="one self-contained HTML report of a run (and PNG plots)")
    report.add_argument("run", type=Path, help="the run folder")
    report.add_argument("--out", type=Path, help="HTML file to write (default RUN/report.html)")
    report.set_defaults(func=cmd_report)

    status = sub.add_parser("status", help="one-screen summary of a run in progress or finished")
    status.add_argument("run", type=Path, help="the run folder")
    status.set_defaults(func=cmd_status)

    etraces = sub.add_parser("export-traces", help="the run in the layout of the released Gome traces")
    etraces.add_argument("run", type=Path, help="the run folder")
    etraces.add_argument("-o", "--output", type=Path, required=True, help="JSON file to write")
    etraces.set_defaults(func=cmd_export_traces)

    itraces = sub.add_parser("import-traces", help="load released-layout traces into run folders (for report/status)")
    itraces.add_argument("file", type=Path, help="traces JSON (ours or the released GPT-5 traces)")
    itraces.add_argument("--out", type=Path, required=True, help="folder for one run folder per competition")
    itraces.set_defaults(func=cmd_import_traces)

    prompts = sub.add_parser("prompts", help="work with the prompt templates")
    psub = prompts.add_subparsers(dest="prompts_command", required=True)
    check = psub.add_parser("check", help="render every template with sample data and report problems")
    check.add_argument("dir", type=Path, help="folder of templates")
    check.set_defaults(func=cmd_prompts_check)
    pexport = psub.add_parser("export", help="copy the default templates into a folder to edit")
    pexport.add_argument("dir", type=Path, help="folder to copy the templates into")
    pexport.add_argument("--force", action="store_true", help="overwrite templates already there")
    pexport.set_defaults(func=cmd_prompts_export)

    bench = sub.add_parser("bench", help="benchmarks")
    bsub = bench.add_subparsers(dest="bench_command", required=True)
    overhead = bsub.add_parser("overhead", help="the agent's own time per step and prompt growth (scripted LLM)")
    overhead.add_argument("--steps", type=int, default=100, help="steps to run (100 measures the prompt at step 100)")
    overhead.add_argument("--out", type=Path, help="keep the benchmark's run folder here")
    overhead.set_defaults(func=cmd_bench_overhead)
    sched = bsub.add_parser("scheduler", help="GPU/worker busy fraction and throughput of K traces vs one")
    sched.add_argument("--run-seconds", type=float, default=6.0, help="length of each training run")
    sched.add_argument("--llm-delay", type=float, default=6.0, help="LLM time per step")
    sched.add_argument("--steps", type=int, default=8, help="steps per trace")
    sched.add_argument("--traces", type=int, default=3, help="K, compared with one trace")
    sched.add_argument("--out", type=Path, help="keep the benchmark's run folders here")
    sched.set_defaults(func=cmd_bench_scheduler)
    valid = bsub.add_parser("validation", help="leaking, self-inflated and noisy steps under the old and the new "
                            "validation protocol (scripted changes, real solutions)")
    valid.add_argument("--seeds", type=int, default=5, help="seeds per scenario (each a fresh data set and order)")
    valid.add_argument("--out", type=Path, help="keep the benchmark's run folders and outcomes.jsonl here")
    valid.set_defaults(func=cmd_bench_validation)
    prep = bsub.add_parser("prepare", help="build the offline competitions (MLE-bench layout, with leaderboards)")
    prep.add_argument("--out", type=Path, default=None, help="folder (default ~/.cache/gome-agent/bench)")
    prep.add_argument("--only", help="comma-separated competition ids")
    prep.add_argument("--force", action="store_true", help="rebuild competitions that are already complete")
    prep.add_argument("--no-leaderboards", action="store_true", help="data only (no grading possible)")
    prep.set_defaults(func=cmd_bench_prepare)
    grade = bsub.add_parser("grade", help="grade a submission.jsonl like `mlebench grade`")
    grade.add_argument("--submission", type=Path, required=True, help="submission.jsonl (MLE-bench's format)")
    grade.add_argument("--output-dir", type=Path, required=True, help="folder for the grading report")
    grade.add_argument("--data-dir", type=Path, default=None, help="prepared benchmark (default ~/.cache/gome-agent/bench)")
    grade.set_defaults(func=cmd_bench_grade)
    brun = bsub.add_parser("run", help="a sweep: strategies x models x competitions x seeds on the offline "
                           "benchmark, on this machine or a Ray cluster, resumable")
    brun.add_argument("--sweep", type=Path, help="sweep file (.yaml, .json): competitions, strategies, seeds, models, "
                      "llm, time_limit, settings, resources, data_dir; the flags below override its fields")
    brun.add_argument("--strategies", help="comma-separated: gome, tree, aide (AIDE, the aideml package, in its own "
                      "virtual environment); default gome,tree")
    brun.add_argument("--competitions", help="comma-separated competition ids")
    brun.add_argument("--seeds", type=int, help="runs per competition, model and strategy (default 3, MLE-bench's rule)")
    brun.add_argument("--time-limit", help="budget of each run (default 10m)")
    brun.add_argument("--model", help="model name, or several comma-separated (qwen2.5-coder for `gome llm serve`)")
    brun.add_argument("--provider", choices=["openai", "anthropic", "openai-compatible"],
                      help="LLM provider (default openai-compatible)")
    brun.add_argument("--base-url", help="API base URL (for openai-compatible servers)")
    brun.add_argument("--config", type=Path, help="settings shared by every run (.toml, .yaml, .json)")
    brun.add_argument("--data-dir", type=Path, help="prepared benchmark folder (the same path on every machine)")
    brun.add_argument("--out", type=Path, required=True,
                      help="results folder: results.jsonl, attempts.jsonl, the summary (runs done are kept)")
    brun.add_argument("--storage", type=Path, help="where the run folders go (default OUT/runs); with Ray, a shared "
                      "file system or a local path on every node")
    brun.add_argument("--parallel", type=int, default=1,
                      help="on this machine: runs at once, within its cores and GPUs (default 1)")
    brun.add_argument("--ray-address", help="run on a Ray cluster: auto, host:port or ray://host:port "
                      "(needs pip install 'gome-agent[ray]' here and on the cluster)")
    brun.add_argument("--max-retries", type=int, default=3, help="with Ray: times a run starts again when its node "
                      "is lost (default 3)")
    brun.add_argument("--cpus-per-run", type=float, help="CPU cores each run asks for (default: its traces)")
    brun.add_argument("--gpus-per-run", type=float, help="GPUs each run asks for (default 0)")
    brun.add_argument("--aide-venv", type=Path,
                      help="virtual environment of the aide strategy: used as it is when it has aideml, else aideml is "
                      "installed there (default ~/.cache/gome-agent/peers/aide-0.2.2)")
    brun.set_defaults(func=cmd_bench_run)
    bsum = bsub.add_parser("summary", help="the summary and per-run details of a gome bench run results folder")
    bsum.add_argument("--out", type=Path, required=True, help="the results folder of gome bench run")
    bsum.set_defaults(func=cmd_bench_summary)

    dem = sub.add_parser("demo", help="no API key needed: a local model runs Gome on a small competition")
    dem.add_argument("--out", type=Path, default=Path("gome-demo"), help="folder for everything the demo makes")
    dem.add_argument("--time-limit", default="5m", help="budget of the run")
    dem.add_argument("--model", default="qwen2.5-coder-1.5b", choices=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"],
                     help="local model")
    dem.set_defaults(func=cmd_demo)

    llm = sub.add_parser("llm", help="the local model (llama.cpp with verified Qwen2.5-Coder weights)")
    lsub = llm.add_subparsers(dest="llm_command", required=True)
    lprep = lsub.add_parser("prepare", help="download and verify the weights, build llama-server (cached)")
    lprep.add_argument("--model", default="qwen2.5-coder-0.5b", choices=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"],
                       help="which weights")
    lprep.set_defaults(func=cmd_llm_prepare)
    lserve = lsub.add_parser("serve", help="serve the local model on 127.0.0.1 (OpenAI and Anthropic APIs)")
    lserve.add_argument("--model", default="qwen2.5-coder-0.5b", choices=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"],
                        help="which weights")
    lserve.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1")
    lserve.add_argument("--log", type=Path, default=Path("llama-server.log"), help="the server's log file")
    lserve.add_argument("--traces", type=int, default=3,
                        help="traces it serves at once: one llama-server slot each (--parallel; default 3)")
    lserve.add_argument("--ctx-per-slot", type=int,
                        help="tokens of context per slot (default 8192); llama-server's --ctx-size is this times --traces")
    lserve.set_defaults(func=cmd_llm_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except GomeError as exc:
        print(f"gome: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gome: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
