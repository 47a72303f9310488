"""DAgger with demonstrator branches (dmpc_jax/finetune/dagger.py): branches fork from the
learner's state and record the expert's actions; pieces end where a branch is forked again; the
buffer keeps the newest pieces; the mixed batches hold both sources."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmpc_jax.envs.rollout import stateless
from dmpc_jax.finetune.dagger import DaggerConfig, MixedWindows, make_branch_rollout
from dmpc_jax.finetune.rwr import ReplayBuffer, split_pieces

EXPERT_ACTION = 0.375  # exact in float32
JOINT_POS = slice(12, 24)  # obs.OBS_SLICES["joint_pos"]


def _expert_of(state):
    """The test's expert: its action depends on the observation it acts on."""
    return EXPERT_ACTION + 0.05 * np.tanh(np.asarray(state)[..., JOINT_POS])


def test_branches_fork_from_the_learner_and_record_the_expert(env):
    def learner(obs, key):
        return jnp.zeros(obs["state"].shape[:-1] + (12,))

    def expert(obs, key):
        return EXPERT_ACTION + 0.05 * jnp.tanh(obs["state"][..., JOINT_POS])

    n_envs, n_steps, lo, hi, skip = 2, 40, 6, 9, 2
    start, run = make_branch_rollout(
        env, stateless(learner), expert, n_envs=n_envs, n_steps=n_steps, branch_steps=(lo, hi),
        hold_steps=3, skip_after_fork=skip,
    )  # fmt: skip
    carry = start(jax.random.PRNGKey(0), ())
    _, rec = run(carry, jax.random.PRNGKey(1), ())
    rec = jax.device_get(rec)
    fork, obs, learner_obs = rec["fork"], rec["obs"], rec["learner_obs"]
    # only the expert is recorded, each action beside the observation it was computed from (the
    # dataset's pairing: a one-step shift would pair it with the next step's observation)
    np.testing.assert_allclose(rec["action"], _expert_of(obs), atol=1e-6)
    assert not np.allclose(rec["action"][1:], _expert_of(obs[:-1]), atol=1e-4)
    assert fork.sum() >= n_envs * (n_steps // hi - 1)
    # at a fork the branch observes exactly what the learner env observes ...
    np.testing.assert_array_equal(obs[fork], learner_obs[fork])
    # ... and a few steps later, under other actions, it no longer does
    t, e = np.nonzero(fork[: n_steps - 3])
    assert not np.allclose(obs[t + 3, e], learner_obs[t + 3, e])
    # a piece ends on the step before each fork, so no window spans two branches
    fell = rec["terminated"]
    np.testing.assert_array_equal(rec["done"][:-1] & ~fell[:-1], fork[1:] & ~fell[:-1])
    for e in range(n_envs):  # each branch runs lo..hi expert steps before the next fork
        gaps = np.diff(np.flatnonzero(fork[:, e]))
        assert len(gaps) and ((gaps >= lo) & (gaps <= hi)).all()
    # no window starts in the first `skip` steps of a branch (the first starts at the reset)
    age = np.zeros(n_envs, int)
    for t in range(n_steps):
        age = np.where(fork[t], 0, age)
        np.testing.assert_array_equal(rec["valid"][t], age >= skip)
        age = age + 1
    pieces = split_pieces(rec["valid"], rec["done"], lo - skip)
    assert pieces and all(b - a <= hi - skip for _, a, b in pieces)
    assert all(a == skip or fork[a - skip, e] for e, a, _ in pieces)


def _rec(t, b, start, reward=0.0):
    return {
        "obs": np.full((t, b, 49), start, np.float32),
        "action": np.zeros((t, b, 12), np.float32),
        "reward": np.full((t, b), reward, np.float32),
        "done": np.zeros((t, b), bool),
        "valid": np.ones((t, b), bool),
        "wz": np.zeros((t, b), np.float32),
    }


def test_buffer_keep_newest_drops_the_oldest_whatever_their_reward(tmp_path):
    # older pieces score higher: "best" keeps them, "newest" does not
    buf, best = ReplayBuffer(3, 10, keep="newest"), ReplayBuffer(3, 10)
    for it in range(1, 4):
        buf.add_rollout(_rec(10, 2, float(it), reward=4.0 - it), 5, it)
        best.add_rollout(_rec(10, 2, float(it), reward=4.0 - it), 5, it)
    assert len(buf) == 3
    assert sorted(buf.added.tolist()) == [2, 3, 3]  # iteration 1 and one of iteration 2 gone
    assert sorted(best.added.tolist()) == [1, 1, 2]
    buf.save(tmp_path / "b.npz")
    assert ReplayBuffer.load(tmp_path / "b.npz").keep == "newest"
    with pytest.raises(ValueError, match="keep"):
        ReplayBuffer(3, 10, keep="oldest")


class _Offline:
    """A stand-in offline sampler: every window's obs is -1 (the buffer's are +5)."""

    def sample(self, rng, n):
        return {"obs": np.full((n, 6, 49), -1.0, np.float32),
                "action": np.zeros((n, 6, 12), np.float32), "reward": np.zeros((n, 6), np.float32)}  # fmt: skip


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.0])
def test_every_batch_of_a_call_holds_the_offline_share(fraction):
    # the cpu run's shapes: 20 batches of 256 per call. The bug this guards against sized the
    # offline share for one batch and reshaped a call's worth: 19 of 20 batches had none.
    cfg = DaggerConfig(dataset="x", offline_fraction=fraction) if fraction else DaggerConfig(
        dataset="", offline_fraction=0.0)  # fmt: skip
    steps, batch = cfg.steps_per_call, cfg.batch_size
    assert (steps, batch) == (20, 256)
    buf = ReplayBuffer(10, 12, keep="newest")
    buf.add_rollout(_rec(12, 2, 5.0), 6, 1)
    n_off = int(round(fraction * batch))
    mixed = MixedWindows(n_off, 6, _Offline() if n_off else None)
    w = mixed.sample(np.random.default_rng(0), buf, steps, batch)
    assert w["obs"].shape == (steps, batch, 6, 49) and w["weight"].shape == (steps, batch)
    offline_per_batch = (w["obs"][:, :, 0, 0] == -1.0).sum(1)
    np.testing.assert_array_equal(offline_per_batch, n_off)
    np.testing.assert_array_equal((w["obs"][:, :, 0, 0] == 5.0).sum(1), batch - n_off)
    np.testing.assert_array_equal(w["weight"], 1.0)


def test_mixed_windows_need_an_offline_sampler_for_an_offline_share():
    with pytest.raises(ValueError, match="offline sampler"):
        MixedWindows(4, 6, None)


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="branch_steps"):
        DaggerConfig(branch_steps=(10, 5))
    with pytest.raises(ValueError, match="needs a dataset"):
        DaggerConfig(dataset="", offline_fraction=0.5)
    with pytest.raises(ValueError, match="offline_fraction"):
        DaggerConfig(offline_fraction=1.5)
    with pytest.raises(ValueError, match="ema_decay"):
        DaggerConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="eval_rules"):
        DaggerConfig(eval_rules=("boxed",))


def test_the_learner_is_the_planner_or_the_demonstrator():
    assert DaggerConfig().learner == "planner"
    assert DaggerConfig(learner="demonstrator").learner == "demonstrator"
    with pytest.raises(ValueError, match="learner"):
        DaggerConfig(learner="ppo")
    with pytest.raises(ValueError, match="skip_after_fork"):
        DaggerConfig(skip_after_fork=-1)


def test_fallen_pieces_covers_each_piece_that_ends_in_a_fall():
    from dmpc_jax.finetune.dagger import fallen_pieces

    done = np.zeros((8, 2), bool)
    term = np.zeros((8, 2), bool)
    done[[2, 5, 7], 0] = True  # env 0: pieces 0-2, 3-5 (falls), 6-7
    term[5, 0] = True
    done[[3, 7], 1] = True  # env 1: pieces 0-3 (falls), 4-7 (ends by time)
    term[3, 1] = True
    mask = fallen_pieces(done, term)
    np.testing.assert_array_equal(np.flatnonzero(mask[:, 0]), [3, 4, 5])
    np.testing.assert_array_equal(np.flatnonzero(mask[:, 1]), [0, 1, 2, 3])
    pieces = split_pieces(np.ones((8, 2), bool) & ~mask, done, 1)
    assert sorted(pieces) == [(0, 0, 3), (0, 6, 8), (1, 4, 8)]


def test_committed_branches_replay_the_learner_then_the_expert_and_keep_the_fork_window(env):
    """``commit_steps`` D: the branch repeats the learner's next D actions (the async planner's
    in-flight ones) from the learner's own state, then the expert acts; with ``fork_window`` H
    only the first H steps of each branch are kept, so its one window starts at the fork."""

    def learner(obs, key):
        return jnp.zeros(obs["state"].shape[:-1] + (12,))

    def expert(obs, key):
        return EXPERT_ACTION + 0.05 * jnp.tanh(obs["state"][..., JOINT_POS])

    n_envs, n_steps, lo, hi, d, h = 2, 40, 6, 9, 2, 5
    start, run = make_branch_rollout(
        env, stateless(learner), expert, n_envs=n_envs, n_steps=n_steps, branch_steps=(lo, hi),
        hold_steps=3, commit_steps=d, fork_window=h,
    )  # fmt: skip
    carry = start(jax.random.PRNGKey(0), ())
    _, rec = jax.device_get(run(carry, jax.random.PRNGKey(1), ()))
    fork, obs, learner_obs, action = rec["fork"], rec["obs"], rec["learner_obs"], rec["action"]
    age, ages = np.full(n_envs, -1), np.zeros(fork.shape, int)
    for t in range(n_steps):
        age = np.where(fork[t], 0, age + 1)
        ages[t] = age
    assert fork.sum() >= n_envs * (n_steps // hi - 1)
    fell = np.logical_or.accumulate(rec["terminated"], axis=0)  # a fall resets the robots apart
    live = (ages >= 0) & ~fell
    committed, expert_steps = live & (ages < d), live & (ages >= d)
    # the committed steps: the learner's action, from the learner env's very state
    np.testing.assert_array_equal(action[committed], 0.0)
    np.testing.assert_array_equal(obs[committed], learner_obs[committed])
    # then the expert's action on the branch's own observation, and the branch departs
    np.testing.assert_allclose(action[expert_steps], _expert_of(obs[expert_steps]), atol=1e-6)
    assert not np.allclose(obs[live & (ages == d + 2)], learner_obs[live & (ages == d + 2)])
    # only a branch's first H steps form its piece: one window, starting at the fork
    np.testing.assert_array_equal(rec["valid"][ages >= 0], ages[ages >= 0] < h)
    pieces = split_pieces(rec["valid"], rec["done"], h)
    assert pieces and all(b - a == h and (fork[a, e] or a == 0) for e, a, b in pieces)


def test_the_rate_holds_then_falls_linearly_over_the_last_steps_of_the_run():
    """At the real run's shapes (5 x 340 steps, the last 680 annealed), Adam with a constant
    gradient moves by the rate itself: 1e-4 for 1020 steps, then linearly down to 1e-4 / 680."""
    from dmpc_jax.finetune.dagger_config import make_dagger_optimizer

    p = jnp.zeros(())

    def moves(**kw):  # how far Adam moves p at each of the run's 1700 steps
        opt = make_dagger_optimizer(
            DaggerConfig(iterations=5, denoiser_steps=340, grad_clip=1e9, **kw)
        )

        def step(state, _):
            u, state = opt.update(jnp.ones(()), state, p)
            return state, -u

        return np.asarray(jax.lax.scan(step, opt.init(p), None, length=1700)[1])

    annealed = moves(lr_decay_steps=680)
    np.testing.assert_allclose(annealed[:1021], 1e-4, rtol=1e-3)
    np.testing.assert_allclose(annealed[1020:], 1e-4 * (680 - np.arange(680)) / 680, rtol=1e-3)
    np.testing.assert_allclose(moves(), 1e-4, rtol=1e-3)
    with pytest.raises(ValueError, match="lr_decay_steps"):
        DaggerConfig(iterations=5, denoiser_steps=340, lr_decay_steps=1701)


def test_the_best_snapshot_is_kept_as_a_planner_run_of_its_own(tmp_path):
    """``keep_best_planner`` keeps the first evaluation, replaces it only on a higher rate (a tie
    keeps the earlier) and leaves a run ``load_planner`` reads: the kept snapshot's parameters,
    the run's scaler, with ``best.json`` naming its iteration."""
    import json
    import shutil

    from dmpc_jax.finetune.update import keep_best_planner
    from dmpc_jax.planner.load import load_planner

    src = Path("checkpoints/diffusion/cpu")
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "scaler.json", "robot.json"):
        shutil.copyfile(src / name, run / name)
    shutil.copyfile(src / "config.json", run / "pretrain_config.json")
    params = load_planner(src).params
    snapshot = {it: jax.tree.map(lambda x, it=it: np.asarray(x) * (1 + it / 100), params)
                for it in range(1, 5)}  # fmt: skip
    kept = [keep_best_planner(run, snapshot[it], it, {"eval/strict": r, "eval/box": 0.9}, "strict")
            for it, r in ((1, 0.3), (2, 0.2), (3, 0.3), (4, 0.5))]  # fmt: skip
    assert kept == [True, False, False, True]
    info = json.loads((run / "best/best.json").read_text())
    assert (info["iteration"], info["rate"], info["eval/box"]) == (4, 0.5, 0.9)
    got = load_planner(run / "best")
    for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(snapshot[4]), strict=True):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-6)
    want = load_planner(src).scaler
    for k in want:
        np.testing.assert_allclose(got.scaler[k], want[k])
    with pytest.raises(ValueError, match="keep_best needs evaluations"):
        DaggerConfig(keep_best=True, eval_every=0)
