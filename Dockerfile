# gome-agent for MLE-bench. Built by `gome register` into agents/gome/ of an mle-bench checkout:
#   docker build --platform=linux/amd64 -t gome agents/gome/ --build-arg SUBMISSION_DIR=... (4 dirs)
# MLE-bench builds its base image locally, untagged, and requires exactly this FROM line.
# hadolint ignore=DL3006
FROM mlebench-env

# MLE-bench's folders (agents/.shared_env) by default, so a build without the --build-arg flags still has them.
ARG SUBMISSION_DIR=/home/submission
ENV SUBMISSION_DIR=${SUBMISSION_DIR}
ARG LOGS_DIR=/home/logs
ENV LOGS_DIR=${LOGS_DIR}
ARG CODE_DIR=/home/code
ENV CODE_DIR=${CODE_DIR}
ARG AGENT_DIR=/home/agent
ENV AGENT_DIR=${AGENT_DIR}

RUN mkdir -p ${LOGS_DIR} ${CODE_DIR} ${AGENT_DIR}

# gome-agent gets a virtual environment of its own (from the `agent` env's Python 3.11), so its
# dependencies (current openai/anthropic SDKs, pydantic 2) never change the `agent` conda env,
# whose pinned ML stack the generated solutions use.
ARG GOME_ENV=/opt/gome
ARG SOLUTION_PYTHON=/opt/conda/envs/agent/bin/python
COPY gome-agent /opt/gome-agent
RUN ${SOLUTION_PYTHON} -m venv ${GOME_ENV} \
    && ${GOME_ENV}/bin/pip install --no-cache-dir "/opt/gome-agent[gpu]"

ENV GOME_PYTHON=${GOME_ENV}/bin/python \
    GOME_SOLUTION_PYTHON=${SOLUTION_PYTHON}

COPY start.sh ${AGENT_DIR}/start.sh
COPY obfuscated ${AGENT_DIR}/obfuscated
