"""13_reinforcement: the CartPole challenge (helpers/grading/tasks/cartpole.py) and helpers/rl.py.

The sandbox only records the actions a policy takes; the trusted side replays them from the seeds with
gymnasium. The fast tests check the replay (it gives a policy exactly what its actions earn, and nothing
for actions it did not take or that are not 0 or 1), the held-out seeds (drawn from the secret, never
public, rebuilt byte for byte), and the trusted scorer on hand-made records. The slow test grades
submissions through the real CLI: the solution, a weak policy, a missing one, one over its CPU budget, and
one that fakes the actions it reports (it patches the harness's player): each gets what its actions earn.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support import submissions as subs
from autograder.authoring.challenges import challenge_plans, load_challenges
from autograder.authoring.heldout import HELDOUT_DIR, heldout_secret, load_heldout, secret_seed
from autograder.course import Course
from tests.support.course import REPO
from helpers import rl
from helpers.grading.checking import encode
from helpers.grading.tasks import cartpole as cp
from helpers.grading.tasks import get_task

AID = "13_reinforcement"
COURSE = Course(REPO / "course")

def _rule(S):
    """The notebook's hand-written rule: push towards the side the pole falls to."""
    return (S[:, 2] + S[:, 3] > 0).astype(int)


# -- the replay ------------------------------------------------------------------------------------

def test_replay_gives_what_the_actions_earn():
    seeds = [3, 1000, 12345]
    played = rl.run_episodes(_rule, seeds)
    actions = rl.play_actions(_rule, seeds)
    for s, e, a in zip(seeds, played, actions):
        n = len(e["actions"])
        assert (a[:n] == e["actions"]).all() and (a[n:] == -1).all()
        assert rl.replay_return(a, s) == e["rewards"].sum() == n


def test_replay_stops_at_an_invalid_action_and_at_the_episodes_end():
    a = rl.play_actions(_rule, [7])[0].astype(np.float64)
    full = rl.replay_return(a, 7)
    assert full > 100
    for bad in (2.0, -1.0, 0.5, np.nan, np.inf):
        b = a.copy()
        b[10] = bad
        assert rl.replay_return(b, 7) == 10.0             # the 10 steps before it, nothing more
    assert rl.replay_return(a[:25], 7) == 25.0           # a sequence that ends early: what it played
    assert rl.replay_return(np.ones(500), 7) < 20         # always right: the pole falls within a few steps
    assert rl.replay_return(np.ones(2000), 7) == rl.replay_return(np.ones(500), 7)   # nothing past 500 steps


def test_the_return_depends_on_the_seed_the_replay_uses():
    a = rl.play_actions(_rule, [11])[0]
    returns = {rl.replay_return(a, s) for s in (11, 12, 13, 14)}
    assert len(returns) > 1                               # the actions of seed 11 do not fit other starts


# -- the held-out seeds ----------------------------------------------------------------------------

def test_heldout_seeds_are_secret_large_distinct_and_rebuilt_byte_for_byte():
    seeds = load_heldout(cp.HELDOUT_FILE, HELDOUT_DIR)["seeds"]
    assert seeds.dtype == np.int64 and seeds.shape == (cp.N_HELDOUT,) and len(set(seeds.tolist())) == cp.N_HELDOUT
    assert seeds.min() >= 2 ** 31 and not set(seeds.tolist()) & set(cp.VALIDATION_SEEDS)
    name, build = get_task("cartpole_policy").heldout_file()
    secret = heldout_secret(HELDOUT_DIR)
    again = build(None, None, lambda purpose: secret_seed(secret, purpose))["seeds"]
    assert (again == seeds).all()
    other = build(None, None, lambda purpose: secret_seed(b"\0" * 32, purpose))["seeds"]
    assert not set(other.tolist()) & set(seeds.tolist())  # another secret, other seeds


def test_nothing_held_out_ships():
    seeds = {str(s) for s in load_heldout(cp.HELDOUT_FILE, HELDOUT_DIR)["seeds"].tolist()}
    for path in [REPO / "release" / AID / "checks.json", REPO / "release" / AID / f"{AID}.ipynb",
                 REPO / "helpers" / "rl.py", REPO / "helpers" / "grading" / "tasks" / "cartpole.py"]:
        text = path.read_text()
        assert not any(s in text for s in seeds), path


# -- the trusted scorer on hand-made records ---------------------------------------------------------

RUN_CPU = 12.0   # the whole run's CPU time, as measured outside the sandbox: within 20 + 10 s


def _plan():
    return challenge_plans(COURSE, AID)["cartpole_policy"]


def _record(output, holdings=(("model.w", [226], "float32"),)):
    return json.dumps({"challenge": "cartpole_policy", "cpu_seconds": 2.0, "holdings": [list(h) for h in holdings],
                       "holdings_complete": True, "output": encode(np.asarray(output, dtype=np.float64))})


def test_the_scorer_replays_the_actions_and_never_believes_a_number():
    plan = _plan()
    seeds = [int(s) for s in plan.targets]
    good = plan.score(_record(rl.play_actions(_rule, seeds)), run_cpu_seconds=RUN_CPU)
    assert good.ok and good.value == pytest.approx(np.mean([rl.replay_return(a, s) for a, s in
                                                             zip(rl.play_actions(_rule, seeds), seeds)]), abs=0.05)
    # a "score" of 500 in every slot: not actions, the replay stops at once
    assert plan.score(_record(np.full((len(seeds), 500), 500.0)), run_cpu_seconds=RUN_CPU).score(5) == 0
    # the right actions for other seeds (the validation ones): they earn what they earn here, little
    other = rl.play_actions(_rule, list(cp.VALIDATION_SEEDS))
    assert plan.score(_record(other), run_cpu_seconds=RUN_CPU).value < good.value
    # the wrong shape: zero with a reason
    wrong = plan.score(_record(np.zeros((len(seeds), 10))), run_cpu_seconds=RUN_CPU)
    assert wrong.score(5) == 0 and "shape" in wrong.message(5)


def test_the_task_plays_greedily_and_pads_with_minus_one():
    import torch

    class Rule(torch.nn.Module):
        def forward(self, x):
            s = x[:, 2] + x[:, 3]
            return torch.stack([-s, s], dim=1)

    task = get_task("cartpole_policy")
    out = task.outputs(Rule(), np.array([5, 6], dtype=np.int64))
    assert out.shape == task.output_shape(2) == (2, 500)
    assert set(np.unique(out).tolist()) <= {-1.0, 0.0, 1.0}
    assert task.score(out, np.array([5, 6])) == pytest.approx(rl.episode_returns(_rule, [5, 6]).mean())


def test_the_declaration_and_the_notebook_agree():
    ch = load_challenges(COURSE.cases_file(AID))["cartpole_policy"]
    assert (ch.task, ch.heldout, ch.metric, ch.full, ch.zero) == ("cartpole_policy", cp.HELDOUT_FILE, "mean return",
                                                                   475.0, 200.0)
    checks = json.loads((REPO / "release" / AID / "checks.json").read_text())["challenges"]["cartpole_policy"]
    import nbformat
    text = "\n".join(c.source for c in nbformat.read(REPO / "release" / AID / f"{AID}.ipynb", as_version=4).cells)
    assert f"{checks['max_parameters']:,} numbers" in text and f"{checks['cpu_seconds']:g} CPU seconds" in text
    assert "5 points for $R \\ge 475$" in text and "0 for $R \\le 200$" in text
    assert "a mean return of 400 gives 3.6 points" in text and 5 * (400 - 200) / (475 - 200) == pytest.approx(3.64, abs=0.01)
    whole = checks["cpu_seconds"] + checks["allowance_seconds"]
    assert f"**{whole:g} CPU seconds**: the {checks['cpu_seconds']:g} s of training plus {checks['allowance_seconds']:g} s" in text


# -- end to end through the CLI ---------------------------------------------------------------------

WEAK = '''def fit_cartpole():
    net = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    def sample(S):
        with torch.no_grad():
            return torch.multinomial(net(torch.as_tensor(S)).softmax(-1), 1).squeeze(1).numpy()
    for u in range(20):                      # 160 episodes: about 317 on the held-out seeds
        eps = rl.run_episodes(sample, [500_000 + u * 8 + k for k in range(8)])
        states = torch.as_tensor(np.concatenate([e["states"][:-1] for e in eps]), dtype=torch.float32)
        actions = torch.as_tensor(np.concatenate([e["actions"] for e in eps]))
        rewards = np.concatenate([e["rewards"] for e in eps])
        dones = np.concatenate([np.arange(len(e["rewards"])) == len(e["rewards"]) - 1 for e in eps])
        returns = torch.as_tensor(discounted_returns(rewards, dones, 0.99), dtype=torch.float32)
        loss = reinforce_loss(net(states), actions, returns)
        opt.zero_grad(); loss.backward(); opt.step()
    return net
'''
# fakes the actions the harness records: 500 "right" pushes for every seed (a policy that claims the
# maximum length); the replay ends each episode when the pole falls, after a few steps
FAKER = '''def fit_cartpole():
    import helpers.rl as R
    R.play_actions = lambda act, seeds: np.ones((len(seeds), 500), dtype=np.int64)
    return nn.Sequential(nn.Linear(4, 2))
'''
ENDLESS = '''def fit_cartpole():
    while True:
        sum(range(10_000))
'''


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    variants = {"strong": None, "weak": WEAK, "missing": subs.STUB, "faker": FAKER, "endless": ENDLESS}
    return subs.challenge_batch(tmp_path_factory.mktemp("cartpole"), AID, "cartpole_policy", "fit_cartpole", variants)


@pytest.mark.slow
def test_strong_weak_missing_faker_endless(graded):
    assert graded["result"].returncode == 0, graded["result"].stderr[-3000:]
    g = graded["grades"]
    exercises = 14                                          # the notebook's 7 exercises; the challenge is 5 more
    assert (g[("strong", AID)]["score"], g[("strong", AID)]["max_score"]) == ("19", "19")
    assert "5 / 5 points" in graded["verdict"]("strong") and "mean return 500.0" in graded["verdict"]("strong")
    weak = float(g[("weak", AID)]["score"])
    assert exercises < weak < exercises + 5, weak
    assert g[("missing", AID)]["score"] == str(exercises) and "not implemented yet" in graded["verdict"]("missing")
    assert g[("faker", AID)]["score"] == str(exercises), graded["verdict"]("faker")
    assert g[("endless", AID)]["score"] == str(exercises)
