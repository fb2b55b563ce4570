"""The console of gymwire's commands: one line per phase, in place on a terminal, short in a log file;
the libraries' noise is turned off by the commands, never by importing gymwire."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import subprocess
import sys
import time

import pytest

from gymwire.client import EnvPool
from gymwire.env_servers.sdk.background import BackgroundServer
from gymwire.env_servers.textcraft import TextCraftEnvironment
from gymwire.trainer import console as console_module
from gymwire.trainer.console import Console, ConsoleHandler
from gymwire.trainer.evaluate import EvalSpec, evaluate
from gymwire.trainer.train import step_summary


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(console_module.time, "monotonic", clock)
    return clock


def test_a_log_file_gets_an_update_line_per_interval_and_one_summary(monkeypatch):
    clock = _clock(monkeypatch)
    out = io.StringIO()
    console = Console(out, interval=30)
    phase = console.phase("eval base", total=100)
    for i in range(100):
        clock.now += 1  # 100 s in all: three lines of updates, not a hundred
        phase.update(f"episodes  success {i / 100:.1%}", advance=1)
    phase.finish("100 episodes  textcraft/easy avg@2 12.0% pass@2 20.0%")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in out.getvalue()
    assert lines[0] == "eval base           30/100 episodes  success 29.0%  30.0s"
    assert lines[-1] == "eval base           100 episodes  textcraft/easy avg@2 12.0% pass@2 20.0%  1m40s"
    short = io.StringIO()
    with Console(short).phase("servers") as phase:
        phase.update("connecting", force=True)
        phase.update("textcraft, babyai ready")
    assert short.getvalue().splitlines() == ["servers             textcraft, babyai ready  0.0s"]


def test_a_terminal_gets_one_line_rewritten_in_place(monkeypatch):
    clock = _clock(monkeypatch)
    out = Terminal()
    console = Console(out, tick=0)
    with console.phase("GRPO easy 1/3") as phase:
        phase.update("rollouts: 2 tasks x 4", force=True)
        clock.now += 12
        phase.update("update on 8 episodes", force=True)
        clock.now += 3
        phase.finish("reward 0.250  success 25.0%  trained 1/2 groups  rollout 12.0s  update 3.0s")
    text = out.getvalue()
    assert text == (
        "\rGRPO easy 1/3       rollouts: 2 tasks x 4  0.0s\x1b[K"
        "\rGRPO easy 1/3       update on 8 episodes  12.0s\x1b[K"
        "\r\x1b[KGRPO easy 1/3       reward 0.250  success 25.0%  trained 1/2 groups  "
        "rollout 12.0s  update 3.0s  15.0s\n"
    )
    assert text.count("\n") == 1


def test_log_records_and_errors_do_not_tear_the_line_in_place(monkeypatch, capsys):
    _clock(monkeypatch)
    out = Terminal()
    console = Console(out, tick=0)
    logger = logging.getLogger("gymwire.test-console")
    logger.propagate = False  # only this handler: a `gymwire` command run earlier in this process set up its own
    handler = ConsoleHandler(console)
    logger.addHandler(handler)
    try:
        phase = console.phase("eval base", total=4)
        phase.update("episodes", advance=1, force=True)
        logger.warning("episode aborted; retrying")
        assert capsys.readouterr().err == "episode aborted; retrying\n"
        # cleared before the record is written, drawn again after it
        assert out.getvalue().endswith("\r\x1b[K\reval base           1/4 episodes  0.0s\x1b[K")
        try:
            with phase:
                raise RuntimeError("server gone")
        except RuntimeError:
            pass
        assert out.getvalue().endswith("\x1b[K\n")  # what was shown stays, and the traceback starts below
    finally:
        logger.removeHandler(handler)


def test_the_clock_of_the_line_in_place_runs_while_a_phase_waits():
    out = Terminal()
    console = Console(out, tick=0.05)
    with console.phase("eval base", total=16) as phase:
        phase.update("episodes", force=True)
        time.sleep(0.5)  # the batch of episodes is generating: no update comes
    shown = out.getvalue()
    assert shown.count("\r") >= 5 and shown.endswith("\n"), shown  # drawn, 3+ ticks, the summary
    time.sleep(0.2)
    assert out.getvalue() == shown  # a finished phase's line is not drawn again


def test_progress_off_prints_nothing_and_live_off_prints_summaries_only():
    quiet = io.StringIO()
    with Console(quiet, enabled=False).phase("servers") as phase:
        phase.update("x", force=True)
    assert quiet.getvalue() == ""
    summaries = Terminal()
    with Console(summaries, live=False).phase("servers") as phase:
        phase.update("x", force=True)
        phase.update("ready", force=True)
    assert summaries.getvalue().startswith("servers             ready  ")
    assert "\r" not in summaries.getvalue()


def test_a_grpo_step_summary_says_reward_success_groups_and_seconds():
    record = {
        "reward": 0.375,
        "success": 0.25,
        "aborted": 0,
        "rollout_s": 41.25,
        "update_s": 75.0,
        "grpo/groups": 2.0,
        "grpo/skipped_groups": 1.0,
        "grpo/nonfinite_groups": 0.0,
        "grpo/loss": 0.0123,
    }
    assert step_summary(record) == (
        "reward 0.375  success 25.0%  trained 1/2 groups  loss 0.0123  rollout 41.2s  update 1m15s"
    )


def test_evaluate_shows_running_success_then_a_summary_line():
    out = io.StringIO()

    async def run() -> None:
        async with EnvPool([server.address]) as pool:
            await evaluate(pool, "oracle", EvalSpec(difficulty="easy", tasks_per_env=3, k=2), progress=Console(out))

    with BackgroundServer(TextCraftEnvironment) as server:
        asyncio.run(run())
    (line,) = out.getvalue().splitlines()
    assert line.startswith("eval                6 episodes  textcraft/easy avg@2 100.0% pass@2 100.0%  ")


QUIET_CHECK = """
import os, sys, warnings
warnings.simplefilter("always")
import gymwire.trainer.train, gymwire.trainer.cli  # importing gymwire changes nothing
assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ and "VLLM_LOGGING_LEVEL" not in os.environ
import transformers.utils.logging as tl
assert tl.is_progress_bar_enabled()
from gymwire.trainer.console import libraries_quiet, setup
assert not libraries_quiet()
setup()  # what `gymwire train/eval/demo` do
assert not tl.is_progress_bar_enabled()
assert os.environ["VLLM_LOGGING_LEVEL"] == "ERROR" and os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1"
assert libraries_quiet()
with warnings.catch_warnings(record=True) as caught:
    warnings.warn_explicit("old api", DeprecationWarning, "lib.py", 1, module="somelib.api")
    warnings.warn_explicit("old arg", FutureWarning, "lib.py", 2, module="somelib")
    warnings.warn_explicit("ours", DeprecationWarning, "x.py", 3, module="gymwire.trainer.x")
    warnings.warn_explicit("real problem", UserWarning, "lib.py", 4, module="somelib")
print(sorted(str(w.message) for w in caught))
"""


def test_commands_quiet_the_libraries_and_importing_gymwire_does_not():
    env = {k: v for k, v in os.environ.items() if k not in console_module._QUIET_ENV}
    done = subprocess.run([sys.executable, "-c", QUIET_CHECK], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "['ours', 'real problem']"


@pytest.mark.slow
def test_behaviour_cloning_shows_steps_and_loss_instead_of_trl_printing(tmp_path, capsys):
    from transformers import AutoTokenizer

    from gymwire.trainer.model import default_model_dir
    from gymwire.trainer.sft import behaviour_clone
    from gymwire.trainer.types import Trajectory

    model_dir = default_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    messages = [{"role": "user", "content": "Goal: craft a stick."}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    action = tokenizer.encode("Action: get 1 bamboo<|im_end|>")
    demo = Trajectory(
        env="textcraft",
        task_id="goal:stick",
        group_id="oracle",
        token_ids=list(prompt) + action,
        loss_mask=[0] * len(prompt) + [1] * len(action),
        reward=1.0,
    )
    out = io.StringIO()
    with Console(out, interval=1.0).phase("behaviour cloning") as phase:
        behaviour_clone(model_dir, [demo] * 4, tmp_path / "bc", epochs=1, lr=1e-4, batch_size=2, phase=phase)
    *updates, line = out.getvalue().splitlines()
    assert all(re.match(r"behaviour cloning   [0-2]/2 steps", u) for u in updates), updates
    assert re.fullmatch(
        r"behaviour cloning   2 steps on 4 episodes  loss \d+\.\d{4} \(mean \d+\.\d{4}\)  -> \S+/bc  \S+s", line
    ), line
    assert set(phase.values) == {"warm_start/loss", "warm_start/train_loss"}
    assert "{'loss'" not in capsys.readouterr().out  # TRL's printer of its logs is left out


def test_the_demo_ends_with_the_reports_headline_and_success_table():
    from gymwire.trainer.cli import report_digest

    page = (
        "# Run report: demo\n\n**GRPO: +6.2 points over the warm start**\n\nGRPO steps: 3\n\n![e](evaluations.png)\n\n"
        "## Success per evaluation (avg@k %)\n\n| evaluation | textcraft |\n|---|---:|\n| base | 0.0 |\n"
        "| stage-0-easy | 6.2 |\n\n![curve](learning_curve.png)\n\n## Held-in vs held-out\n\n| env |\n"
    )
    assert report_digest(page).splitlines() == [
        "**GRPO: +6.2 points over the warm start**",
        "",
        "Success per evaluation (avg@k %)",
        "| evaluation | textcraft |",
        "|---|---:|",
        "| base | 0.0 |",
        "| stage-0-easy | 6.2 |",
    ]
