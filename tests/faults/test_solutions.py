"""Solution runs that hang, eat memory, fork, flood, linger, run out of GPU memory or crash at the end."""

from __future__ import annotations

import json
import threading
import time

import pytest

from gome_agent import jsonl
from gome_agent.execution.scheduler import FakeGpuSource, ResourceScheduler
from tests.faults.conftest import Model, attempt, check_run, fault_config, full, run_in_process, solution

pytestmark = pytest.mark.faults

DRAFT_SCORE = 0.70


def _step2(world, fake_llm, code: str, **overrides):
    """A run whose second step runs `code`; returns the checked verdict's steps."""
    model = Model().inject("update", full(code, "the faulty change"))
    fake_llm.set_responder(model)
    run_in_process(fault_config(world, fake_llm, **{"optimizer": {"max_steps": 2}, **overrides}))
    return model, check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)


def test_an_infinite_loop_times_out_and_each_fix_attempt_is_bounded(world, fake_llm):
    hang = solution(0.99, attack="while True:\n    pass\n")
    model = (Model().inject("update", full(hang, "spin"))
             .inject("debug", "Change: spin slower\n<<<<<<< SEARCH\n    pass\n=======\n    time = 1\n>>>>>>> REPLACE\n"))
    fake_llm.set_responder(model)
    started = time.monotonic()
    run_in_process(fault_config(world, fake_llm, optimizer={"max_steps": 2, "max_debug": 1},
                                execution={"max_run_minutes": 0.05}))
    assert time.monotonic() - started < 60
    verdict = check_run(world, reason="step limit reached", best_at_least=DRAFT_SCORE)
    second = verdict.steps[1]
    assert second.status == "failed" and second.runs == 2 and second.run_status == "timeout"
    assert "killed after the 3 s time limit" in second.message
    assert model.count("debug") == 1


def test_a_memory_bomb_is_killed_at_the_limit(world, fake_llm):
    bomb = "block = bytearray()\nwhile len(block) < 3_000_000_000:\n    block.extend(b'x' * 50_000_000)\n"
    _, verdict = _step2(world, fake_llm, solution(0.99, attack=bomb), execution={"memory_limit_gb": 0.3})
    second = verdict.steps[1]
    assert second.status == "failed" and second.run_status == "memory_exceeded"
    assert "over the 307 MiB limit" in second.message


def test_a_fork_bomb_is_killed_at_the_process_limit(world, fake_llm):
    # Bounded (and cheap: sleep processes) so that a broken limit cannot take the machine down.
    bomb = ("import subprocess\nkids = []\nfor _ in range(1500):\n"
            "    kids.append(subprocess.Popen(['sleep', '60']))\ntime.sleep(60)\n")
    code = solution(0.99, attack=bomb).replace("import os\n", "import os\nimport time\n", 1)
    _, verdict = _step2(world, fake_llm, code, execution={"memory_limit_gb": 8})
    second = verdict.steps[1]
    assert second.status == "failed" and second.run_status == "killed"
    assert "over the 512-process limit (a fork bomb or runaway worker spawning)" in second.message


def test_gigabytes_of_output_are_capped_and_the_valid_solution_still_counts(world, fake_llm):
    flood = "import sys\nchunk = b'y' * (1 << 20)\nfor _ in range(2048):\n    sys.stdout.buffer.write(chunk)\n"
    _, verdict = _step2(world, fake_llm, solution(0.99, attack=flood), execution={"max_log_mb": 1})
    second = verdict.steps[1]
    assert second.status == "accepted"
    stdout = attempt(world, 0, 2) / "stdout.txt"
    assert stdout.stat().st_size < 1_000_000 + 70 * 1024
    assert "bytes of output dropped" in stdout.read_text(errors="replace")


def test_a_child_that_outlives_its_parent_is_killed_with_the_run(world, fake_llm):
    linger = '''
import subprocess, sys
daemon = "import os, time\\nwhile True:\\n    open('alive.txt', 'a').write('.')\\n    time.sleep(0.1)\\n"
if os.fork() == 0:
    subprocess.Popen([sys.executable, "-c", daemon], start_new_session=True)
    os._exit(0)
os.wait()
import time
while not os.path.exists("alive.txt"):  # the daemon is running when the solution ends
    time.sleep(0.05)
'''
    _, verdict = _step2(world, fake_llm, solution(0.99, attack=linger))
    assert verdict.steps[1].status == "accepted"
    alive = attempt(world, 0, 2) / "alive.txt"
    size = alive.stat().st_size
    time.sleep(0.5)
    assert alive.stat().st_size == size  # nothing writes there any more


def test_gpu_out_of_memory_next_to_another_run_is_retried_alone_not_debugged(world, fake_llm):
    # The solution "runs out of GPU memory" while another GPU lease is held, and succeeds alone.
    oom = '''
leases = json.load(open("../../../../scheduler/leases.json"))["leases"]
if sum(h["lease"]["gpu_index"] is not None for h in leases) > 1:
    import sys
    print("Traceback (most recent call last):\\n  File \\"main.py\\", line 12, in <module>\\n"
          "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB "
          "(GPU 0; 15.62 GiB total capacity; 13.10 GiB already allocated; 1.02 GiB free)", file=sys.stderr)
    raise SystemExit(1)
'''
    code = solution(0.99, attack=oom, header="# gome: gpu 1GB\n")
    world.workdir.mkdir()
    other = ResourceScheduler(world.workdir / "scheduler", source=FakeGpuSource(total_mb=16000), cpus=2, slots=2)
    held = other.acquire(owner="another run", gpu=True, mem_mb=8000)
    stderr = attempt(world, 0, 2) / "stderr.txt"

    def release_after_the_oom() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if stderr.exists() and "CUDA out of memory" in stderr.read_text(errors="replace"):
                break
            time.sleep(0.1)
        other.release(held)

    releaser = threading.Thread(target=release_after_the_oom)
    releaser.start()
    try:
        # No smoke run: the out-of-memory retry of the full run (watched in a0's stderr) is what is tested.
        model, verdict = _step2(world, fake_llm, code,
                                execution={"simulate_gpu_mb": 16000, "smoke": {"enabled": False}})
    finally:
        releaser.join()
    second = verdict.steps[1]
    assert second.status == "accepted" and second.gpu
    assert second.oom_retries == 1 and second.runs == 2
    assert second.code_dir.endswith("s0002/a0")  # the same attempt, not a debug attempt
    assert model.count("debug") == 0
    leases = [r for r in jsonl.iter_raw(world.workdir / "scheduler" / "leases.jsonl")
              if r["event"] == "acquire" and r["owner"] == "trace0" and r["gpu_index"] is not None]
    assert [r["exclusive"] for r in leases] == [False, True]
    assert [r["mem_mb"] for r in leases] == [1024, 1024]


def test_a_crash_after_half_a_submission_leaves_the_best_untouched(world, fake_llm):
    crash = '''
with open("submission.csv", "w") as f:
    f.write("id,target\\n" + "".join(f"{i},0.9\\n" for i in ids[: len(ids) // 2]))
json.dump({"score": 0.999}, open("scores.json", "w"))
raise RuntimeError("the process died while writing its submission")
'''
    _, verdict = _step2(world, fake_llm, solution(0.999, attack=crash))
    second = verdict.steps[1]
    assert second.status == "failed" and second.run_status == "failed"
    assert "exited with code 1" in second.message
    assert json.loads((world.workdir / "code" / "best.json").read_text())["step"] == 1
