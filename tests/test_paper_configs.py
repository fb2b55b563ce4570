"""Every experiment of configs/paper/ runs end to end at CPU scale and produces the full report.

The CPU variant keeps each config's environments, stages, mixes and switches and shrinks the
numbers (scale_for_cpu); the servers are real processes, the model is the real default model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gymwire.env_servers.local import LocalServer
from gymwire.env_servers.registry import available
from gymwire.trainer.config import load_config, scale_for_cpu
from gymwire.trainer.train import Trainer

pytestmark = pytest.mark.slow
CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs" / "paper").glob("*.yaml"))
ENVS = ("babyai", "textcraft", "webshop", "searchqa", "alfworld")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    logs = tmp_path_factory.mktemp("servers")
    started = {env: LocalServer(env, log_path=logs / f"{env}.log") for env in ENVS if env in available()}
    try:
        for server in started.values():
            server.wait(timeout=300)
        yield {env: s.address for env, s in started.items()}
    finally:
        for server in started.values():
            server.stop()


def test_every_paper_row_has_a_config():
    names = {c.stem for c in CONFIGS}
    assert {
        "within-env-difficulty",
        "curriculum-babyai",
        "transfer-alfworld",
        "action-list-on",
        "action-list-off",
        "sequential-webshop-textcraft",
        "five-env-sequential",
        "five-env-mixture",
    } <= names
    for path in CONFIGS:
        config = load_config(path)
        assert config.rollout.group_size == 8 and config.eval.k == 8  # the paper's settings


@pytest.mark.timeout(1800)  # the five-environment sequence: six evaluations of every environment and tier
@pytest.mark.parametrize("path", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_cpu_variant_runs_end_to_end(path, servers, tmp_path):
    config = scale_for_cpu(load_config(path))
    missing = sorted(set(config.envs) - set(servers))
    if missing:
        pytest.skip(f"environments not installed here: {missing}")
    config.envs = {env: [servers[env]] for env in config.envs}
    config.run_dir = str(tmp_path / path.stem)
    config.model.threads = 1
    state = Trainer(config, progress=False).run_sync()
    assert state.phase == "done" and state.stage == len(config.stages)
    run = Path(config.run_dir)
    report = (run / "report" / "report.md").read_text()
    assert "## Held-in vs held-out" in report and "## Transfer matrix" in report
    if len(config.stages) > 1:
        assert "## Forgetting" in report
    for env in config.envs:
        assert f"| {env} |" in report  # every environment is evaluated after every stage
    for image in ("evaluations.png", "learning_curve.png", "efficiency.png"):
        assert (run / "report" / image).stat().st_size > 1000
    assert len([p for p in (run / "eval").iterdir()]) == 1 + len(config.stages)
