#!/usr/bin/env bash
# MLE-bench entry point of gome-agent. run_agent.py runs it as the non-root user, with
# COMPETITION_ID, TIME_LIMIT_SECS and the agent's env_vars set, and passes the agent's kwargs as
# arguments (forwarded to `gome mlebench`). When it exits, the harness copies /home/submission,
# /home/logs and /home/code out of the container.
#
# Every path can be moved with an environment variable (GOME_MLEBENCH_HOME for /home, and
# SUBMISSION_DIR, LOGS_DIR, CODE_DIR, AGENT_DIR, GOME_DATA_DIR), so that the whole flow can run
# in a temporary folder; GOME_PYTHON is the interpreter that has gome-agent installed, and
# GOME_TIME_MARGIN_SECS the safety margin (default 1% of the limit, at least 60 s).
set -uo pipefail

HOME_ROOT=${GOME_MLEBENCH_HOME:-/home}
export SUBMISSION_DIR=${SUBMISSION_DIR:-$HOME_ROOT/submission}
export LOGS_DIR=${LOGS_DIR:-$HOME_ROOT/logs}
export CODE_DIR=${CODE_DIR:-$HOME_ROOT/code}
export AGENT_DIR=${AGENT_DIR:-$HOME_ROOT/agent}
export GOME_DATA_DIR=${GOME_DATA_DIR:-$HOME_ROOT/data}
export GOME_MLEBENCH_HOME=$HOME_ROOT
GOME_PYTHON=${GOME_PYTHON:-/opt/gome/bin/python}
RUN_DIR=$AGENT_DIR/run
# A `python` or `pip` that a solution calls by name is the one of the env it runs in (the image puts
# conda's base env, without the ML packages, first on PATH).
if [ -n "${GOME_SOLUTION_PYTHON:-}" ]; then
    solution_bin=$(dirname "$GOME_SOLUTION_PYTHON")
    export PATH="$solution_bin:$PATH"
fi

mkdir -p "$SUBMISSION_DIR" "$LOGS_DIR" "$CODE_DIR" "$AGENT_DIR"
# Everything this script and gome print goes to /home/logs, and to the harness's run.log as ASCII:
# run_agent.py decodes each streamed chunk as UTF-8 on its own, so a character split between two
# chunks ("R²") would end its run before the extraction. Other bytes are written \xNN (perl is in
# every Ubuntu image; tr, the fallback, turns them into "?").
if command -v perl >/dev/null 2>&1; then
    exec > >(tee -a "$LOGS_DIR/start.log" | perl -pe 'BEGIN { $| = 1 } s/([^\x00-\x7f])/sprintf("\\x%02x", ord($1))/ge') 2>&1
else
    exec > >(tee -a "$LOGS_DIR/start.log" | LC_ALL=C tr '\200-\377' '?') 2>&1
fi

say() { echo "[gome start.sh] $*"; }

# Whatever happened, leave the best submission (a real file), the best code and the run record.
finish() {
    status=$?
    trap - EXIT
    if ! "$GOME_PYTHON" -m gome_agent mlebench --finalize --workdir "$RUN_DIR"; then
        say "finalize failed; keeping what is in $SUBMISSION_DIR"
    fi
    if [ -L "$SUBMISSION_DIR/submission.csv" ]; then
        cp --remove-destination "$(readlink -f "$SUBMISSION_DIR/submission.csv")" "$SUBMISSION_DIR/submission.csv"
    fi
    if [ ! -s "$SUBMISSION_DIR/submission.csv" ]; then
        sample=$(find "$GOME_DATA_DIR" -maxdepth 1 -iname '*sample*submission*.csv' | head -n 1)
        if [ -n "$sample" ]; then
            cp "$sample" "$SUBMISSION_DIR/submission.csv"
            say "no submission was made; copied the sample submission $(basename "$sample")"
        else
            say "no submission was made and no sample submission was found"
        fi
    fi
    say "done (exit status $status)"
    exit "$status"
}
trap finish EXIT

# Hardware, as the notes tell the model.
if command -v nvidia-smi >/dev/null 2>&1 && gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null) && [ -n "$gpus" ]; then
    HARDWARE="$(echo "$gpus" | wc -l) $(echo "$gpus" | head -n 1)"
else
    HARDWARE="a CPU"
fi
say "hardware: $HARDWARE"

# Time: a hard limit a little under TIME_LIMIT_SECS, and gome's own budget a little under that,
# so that gome ends by itself and this script still has time to finalize.
if [ -z "${TIME_LIMIT_SECS:-}" ]; then
    TIME_LIMIT_SECS=43200
    say "TIME_LIMIT_SECS is not set; using 43200 s (12 hours)"
fi
margin=${GOME_TIME_MARGIN_SECS:-$(( TIME_LIMIT_SECS / 100 ))}
[ -z "${GOME_TIME_MARGIN_SECS:-}" ] && [ "$margin" -lt 60 ] && margin=60
hard_limit=$(( TIME_LIMIT_SECS - margin ))
gome_limit=$(( hard_limit - margin ))
if [ "$gome_limit" -lt 10 ]; then
    say "TIME_LIMIT_SECS=$TIME_LIMIT_SECS leaves no time to run after the safety margins (2 x ${margin}s)"
    exit 2
fi
TIME_LIMIT="$(( TIME_LIMIT_SECS / 3600 ))hrs $(( TIME_LIMIT_SECS % 3600 / 60 ))mins $(( TIME_LIMIT_SECS % 60 ))secs"

# The full instructions: MLE-bench's instructions, the notes, and the competition description
# (obfuscated variants with OBFUSCATE=true). Nothing is written into the read-only data folder.
instructions=$HOME_ROOT/instructions.txt
description=$GOME_DATA_DIR/description.md
if [ "${OBFUSCATE:-false}" = "true" ]; then
    instructions=$HOME_ROOT/instructions_obfuscated.txt
    description=$GOME_DATA_DIR/description_obfuscated.md
    if [ ! -f "$description" ]; then
        description=$AGENT_DIR/obfuscated/${COMPETITION_ID:-unknown}.md
    fi
    if [ ! -f "$description" ]; then
        say "OBFUSCATE=true but there is no obfuscated description for '${COMPETITION_ID:-unknown}' (looked in $GOME_DATA_DIR and $AGENT_DIR/obfuscated); refusing to show the plain one"
        exit 2
    fi
    # gome shows it to solutions as ./input/description.md in place of the plain one.
    export GOME_OBFUSCATED_DESCRIPTION=$description
fi
full=$AGENT_DIR/full_instructions.txt
{
    if [ -f "$instructions" ]; then
        cat "$instructions"
    else
        say "note: $instructions is missing; using the competition description alone" >&2
    fi
    printf '\nADDITIONAL NOTES\n------\n\n'
    printf -- '- **Compute**: You have access to %s with the appropriate drivers installed.\n' "$HARDWARE"
    printf -- '- **Total Runtime**: You have a maximum of %s to attempt this task, including the time your code runs.\n' "$TIME_LIMIT"
    printf '\nCOMPETITION INSTRUCTIONS\n------\n\n'
    cat "$description" 2>/dev/null
} > "$full"
cp "$full" "$LOGS_DIR/full_instructions.txt"

say "competition ${COMPETITION_ID:-?}: gome runs for ${gome_limit}s under a hard limit of ${hard_limit}s"
timeout --signal=TERM --kill-after=30 "$hard_limit" \
    "$GOME_PYTHON" -m gome_agent mlebench --workdir "$RUN_DIR" --time-limit "$gome_limit" --description "$full" "$@"
code=$?
if [ "$code" -eq 124 ] || [ "$code" -eq 137 ]; then
    say "gome reached the hard time limit and was stopped"
fi
exit "$code"
