"""13_reinforcement: helpers/rl.py (episodes in lockstep, the replay buffer, frames, the script's plumbing)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import rl


def _rule(S):
    return (S[:, 2] + S[:, 3] > 0).astype(int)


def test_lockstep_episodes_equal_one_at_a_time():
    together = rl.run_episodes(_rule, [4, 5, 6])
    for s, e in zip([4, 5, 6], together):
        alone = rl.run_episode(lambda x: int(x[2] + x[3] > 0), s)
        assert (alone["actions"] == e["actions"]).all() and np.allclose(alone["states"], e["states"])
        assert len(e["states"]) == len(e["actions"]) + 1 == len(e["rewards"]) + 1
    random_ep = rl.run_episodes(lambda S: np.zeros(len(S), dtype=int), [4])[0]
    assert random_ep["terminated"] and len(random_ep["actions"]) < 20       # always left: the pole falls


def test_an_episode_is_cut_at_500_steps_without_terminating():
    e = rl.run_episodes(_rule, [1001])[0]
    assert len(e["actions"]) == rl.MAX_STEPS and not e["terminated"]


def test_replay_buffer_wraps_and_samples_only_what_was_written():
    buf = rl.ReplayBuffer(4)
    for i in range(3):
        buf.push(np.full(4, i), i % 2, float(i), np.full(4, i + 1), i == 2)
    assert len(buf) == 3 and buf.position == 3
    S, A, R, S2, T = buf.sample(200, np.random.default_rng(0))
    assert set(R.tolist()) == {0.0, 1.0, 2.0}                               # never the empty fourth slot
    for i in range(3, 7):
        buf.push(np.full(4, i), 0, float(i), np.full(4, i + 1), False)
    assert len(buf) == 4 and buf.position == 3                              # 7 pushes into 4 slots
    assert sorted(buf.rewards.tolist()) == [3.0, 4.0, 5.0, 6.0]             # the oldest three overwritten
    S, A, R, S2, T = buf.sample(5, np.random.default_rng(1))
    assert S.shape == (5, 4) and A.dtype.is_floating_point is False and (S2[:, 0] == S[:, 0] + 1).all()


def test_frames_and_animation_need_no_display():
    import matplotlib
    matplotlib.use("Agg")
    states = rl.run_episodes(_rule, [3])[0]["states"][:20]
    fig = rl.show_frames(states, n=4)
    assert len(fig.axes) == 4
    html = rl.animate(states, every=5)
    assert "<script" in html.data


def test_exported_functions_run_in_a_separate_process(tmp_path):
    def double(x):
        return np.asarray(x) * 2

    # functions defined in a test file have a source file, as cells do in IPython
    path = rl.export_functions(tmp_path / "mod.py", double)
    out = subprocess.run([sys.executable, "-c", "import mod; print(mod.double([1, 2]).tolist())"],
                         cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[2, 4]" and "import torch" in path.read_text()


def test_read_jsonl_skips_blank_lines(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text(json.dumps({"a": 1}) + "\n\n" + json.dumps({"a": 2}) + "\n")
    assert rl.read_jsonl(p) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("actions, expected", [([], 0.0), ([0, 1, 7], 2.0), ([1.0, 0.0], 2.0)])
def test_replay_edge_cases(actions, expected):
    assert rl.replay_return(np.asarray(actions, dtype=float), 3) == expected
