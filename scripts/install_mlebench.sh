#!/usr/bin/env bash
# Installs MLE-bench's own code (the `mlebench` package: its registry, grader and medal rule) into
# the active Python environment, without its heavy dependencies (TensorFlow, the Kaggle client,
# docker, ...): `pip install --no-deps` of the clone. The few packages its registry, grader and
# grading server import come from gome-agent's `mlebench` extra (the `dev` extra includes it):
#
#   pip install -e ".[mlebench]"
#   bash scripts/install_mlebench.sh [PATH/TO/mle-bench]
#
# The source is the argument, else $GOME_MLEBENCH_SRC, else ../shared/mle-bench beside this
# checkout, else /work/shared/mle-bench. Grading real runs needs the clone's leaderboards, which are
# Git LFS objects: run `git lfs pull` in the clone first (the script says when they are pointers).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

src="${1:-${GOME_MLEBENCH_SRC:-}}"
if [ -z "$src" ]; then
    for candidate in "$root/../shared/mle-bench" /work/shared/mle-bench; do
        if [ -f "$candidate/mlebench/grade.py" ]; then
            src="$candidate"
            break
        fi
    done
fi
if [ -z "$src" ] || [ ! -f "$src/mlebench/grade.py" ] || [ ! -f "$src/pyproject.toml" ]; then
    echo "install_mlebench: no MLE-bench source found (looked at '${src:-<argument>}', \$GOME_MLEBENCH_SRC," \
         "$root/../shared/mle-bench and /work/shared/mle-bench); pass the path of a clone of" \
         "github.com/openai/mle-bench" >&2
    exit 1
fi
src="$(cd "$src" && pwd)"

# pip builds a local project inside its folder; the source may be read-only reference files, so
# build from a copy.
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
cp -R "$src/." "$build/"
chmod -R u+w "$build"
python -m pip install --quiet --no-deps --force-reinstall "$build"
# Checked from an empty folder: mlebench.data makes a cache folder in the working directory on import.
mkdir "$build/.check"
if ! (cd "$build/.check" && python -c "import mlebench.grade, mlebench.registry, flask") 2>/dev/null; then
    echo "install_mlebench: mlebench is installed but its grading dependencies are not; install" \
         "gome-agent's mlebench extra: pip install -e \"$root[mlebench]\"" >&2
    exit 1
fi

board="$(find "$src/mlebench/competitions" -name leaderboard.csv -print -quit)"
if [ -n "$board" ] && head -c 40 "$board" | grep -q "git-lfs.github.com/spec"; then
    echo "install_mlebench: installed mlebench from $src; its leaderboards are Git LFS pointer files, so" \
         "it can validate submissions but not award medals to real runs (run 'git lfs pull' in the clone" \
         "and install again for that)"
else
    echo "install_mlebench: installed mlebench from $src"
fi
