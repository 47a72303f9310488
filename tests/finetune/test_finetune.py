"""Reward-weighted regression (METHOD §6): weights, per-group filtering, the replay buffer's pieces,
pruning and persistence, and resume of the finetuning state. (The weighted loss equals the plain
one under uniform weights: tests/test_diffusion.py.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmpc_jax.diffusion import model as M
from dmpc_jax.finetune.rwr import ReplayBuffer, split_pieces
from dmpc_jax.finetune.selection import (
    effective_sample_size,
    group_weights,
    rwr_weights,
    select_top,
)

SCORES = np.array([0.10, 0.25, 0.20, 0.05, 0.30, 0.28])


def test_weights_nonnegative_mean_one_and_shift_invariant():
    w = rwr_weights(SCORES, 0.02)
    assert (w >= 0).all()
    np.testing.assert_allclose(w.mean(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(rwr_weights(SCORES + 7.3, 0.02), w, rtol=1e-5)
    assert np.argmax(w) == np.argmax(SCORES)
    assert (np.diff(w[np.argsort(SCORES)]) >= 0).all()  # monotone in the score


def test_weights_uniform_at_high_and_one_hot_at_low_temperature():
    np.testing.assert_allclose(rwr_weights(SCORES, 1e6), np.ones(6), rtol=1e-5)
    hot = rwr_weights(SCORES, 1e-5)
    expected = np.zeros(6)
    expected[np.argmax(SCORES)] = 6.0  # one-hot, still mean 1
    np.testing.assert_allclose(hot, expected, atol=1e-6)
    assert effective_sample_size(hot) == pytest.approx(1.0)
    assert effective_sample_size(rwr_weights(SCORES, 1e6)) == pytest.approx(6.0)
    with pytest.raises(ValueError, match="temperature"):
        rwr_weights(SCORES, 0.0)


def test_select_top_keeps_the_quantile_of_each_group():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=300)
    groups = np.r_[np.zeros(200, np.int8), np.ones(100, np.int8)]
    keep = select_top(scores, groups, 0.05, max_total=1000)
    g0, g1 = keep[groups[keep] == 0], keep[groups[keep] == 1]
    assert len(g0) == 10 and len(g1) == 5  # 5% of each group, not of the whole
    assert set(g0) == set(np.argsort(-scores[:200])[:10])
    assert set(g1) == set(200 + np.argsort(-scores[200:])[:5])
    # the cap splits over the groups
    capped = select_top(scores, groups, 0.5, max_total=20)
    assert (groups[capped] == 0).sum() == 10 and (groups[capped] == 1).sum() == 10
    with pytest.raises(ValueError, match="quantile"):
        select_top(scores, groups, 0.0, 10)


def test_group_weights_normalise_per_group():
    groups = np.array([0, 0, 0, 1, 1, 1])
    w = group_weights(SCORES, groups, 0.05)
    np.testing.assert_allclose(w[:3].mean(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(w[3:].mean(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(w[:3], rwr_weights(SCORES[:3], 0.05), rtol=1e-6)


def test_split_pieces_cuts_at_episode_ends_and_skips_unplanned_steps():
    valid = np.ones((10, 2), bool)
    done = np.zeros((10, 2), bool)
    done[3, 0] = True  # env 0: episode ends with step 3 -> [0, 4) and [4, 10)
    valid[4:6, 1] = False  # env 1: fresh after a reset at steps 4, 5 -> [0, 4) and [6, 10)
    assert split_pieces(valid, done, 1) == [(0, 0, 4), (0, 4, 10), (1, 0, 4), (1, 6, 10)]
    assert split_pieces(valid, done, 5) == [(0, 4, 10)]


def _records(t, b, rng, reward=None):
    return {
        "obs": rng.normal(size=(t, b, 49)).astype(np.float32),
        "action": rng.normal(size=(t, b, 12)).astype(np.float32),
        "reward": rng.normal(size=(t, b)).astype(np.float32) if reward is None else reward,
        "wz": rng.uniform(-1, 1, size=(t, b)).astype(np.float32),
        "valid": np.ones((t, b), bool),
        "done": np.zeros((t, b), bool),
    }


def test_buffer_pieces_keep_their_data_and_pruning_keeps_the_best():
    rng = np.random.default_rng(1)
    buf = ReplayBuffer(capacity=5, max_len=8)
    rec = _records(8, 3, rng)
    assert buf.add_rollout(rec, min_len=4, iteration=1) == 3
    np.testing.assert_array_equal(buf.obs[1], rec["obs"][:, 1])
    np.testing.assert_allclose(buf.score, rec["reward"].mean(0), rtol=1e-6)
    assert list(buf.group) == [int(w >= 0) for w in rec["wz"][0]]
    all_scores = list(buf.score)
    for it in range(2, 5):
        rec = _records(8, 3, rng)
        buf.add_rollout(rec, min_len=4, iteration=it)
        all_scores += list(rec["reward"].mean(0))
    assert len(buf) == 5
    np.testing.assert_allclose(np.sort(buf.score), np.sort(all_scores)[-5:], rtol=1e-6)
    # windows come from the requested pieces, with their weights
    win = buf.windows(rng, np.array([2]), np.array([3.0]), batch=6, horizon=4)
    assert win["obs"].shape == (6, 4, 49) and (win["weight"] == 3.0).all()
    starts = [np.flatnonzero(buf.obs[2, :, 0] == w[0, 0])[0] for w in win["obs"]]
    for s, w in zip(starts, win["obs"], strict=True):
        np.testing.assert_array_equal(w, buf.obs[2, s : s + 4])


def test_startup_pieces_form_their_own_groups_and_keep_their_best_at_the_runs_shapes(tmp_path):
    """256 envs x 50 steps per iteration, as cpu_paper's rollouts, 3 yaw classes x 4 speed
    classes, episodes reset at different steps: a piece is a start-up piece when its first step
    is within startup_steps of its episode's reset. Start-ups score lower (the robot speeds up),
    so one top quantile over each command group keeps none of them; per start-up group it does.
    """
    from dmpc_jax.finetune.selection import select_top

    rng = np.random.default_rng(4)
    t_len, b, startup, edges = 50, 256, 250, (0.6, 0.7, 0.8)
    bufs = {k: ReplayBuffer(100_000, t_len, yaw_classes=3, speed_edges=edges, startup_steps=k)
            for k in (0, startup)}  # fmt: skip
    t0 = rng.integers(0, 1000, size=b)  # each env's steps since its reset at the first step
    steps = np.arange(t_len)[:, None]
    for it in range(1, 9):
        again = rng.random(b) < 0.2  # about a fifth of the envs end an episode and reset
        reset = rng.integers(1, t_len, size=b)  # ... at this step (their last is the one before)
        after = again & (steps >= reset)
        t = np.where(after, steps - reset, t0 + steps).astype(np.int32)
        reward = np.where(t < startup, 0.1, 0.2) + 0.01 * rng.random((t_len, b))
        rec = _records(t_len, b, rng, reward=reward.astype(np.float32))
        rec.update(t=t, done=again & (steps == reset - 1), vx=rng.uniform(0.5, 1.0, (t_len, b)))
        for buf in bufs.values():
            buf.add_rollout(rec, min_len=24, iteration=it)
        t0 = np.where(again, t_len - reset, t0 + t_len)
    plain, split = bufs[0], bufs[startup]
    assert split.n_groups == 2 * plain.n_groups == 24 and len(split) == len(plain)
    np.testing.assert_array_equal(split.score, plain.score)  # the same pieces, only regrouped
    up = split.group >= plain.n_groups
    np.testing.assert_array_equal(split.group % plain.n_groups, plain.group)
    # a piece is a start-up one exactly when its first step's t is below startup_steps: its
    # reward (0.1 + noise below 0.2) says which steps were start-up steps
    np.testing.assert_array_equal(up, split.reward[:, 0] < 0.15)
    assert up.any() and not up.all()
    top = select_top(plain.score, plain.group, 0.015, 1500, plain.group_sizes())
    assert not up[top].any()  # the plain groups keep no start-up piece
    top = select_top(split.score, split.group, 0.015, 1500, split.group_sizes())
    kept_up = top[up[top]]
    assert len(kept_up) >= plain.n_groups  # at least one per start-up group
    for g in np.unique(split.group[up]):  # and the best of each
        best = np.flatnonzero(split.group == g)[np.argmax(split.score[split.group == g])]
        assert best in kept_up
    split.save(tmp_path / "buffer.npz")  # the layout survives a restart
    back = ReplayBuffer.load(tmp_path / "buffer.npz")
    assert back.startup_steps == startup and back.n_groups == 24
    np.testing.assert_array_equal(back.group_sizes(), split.group_sizes())
    assert split.subset(top, count_rest=True).startup_steps == startup
    with pytest.raises(ValueError, match="needs the records' t"):
        ReplayBuffer(10, t_len, startup_steps=5).add_rollout(_records(t_len, 2, rng), 24, 1)


def test_nose_down_pieces_form_their_own_groups_at_the_runs_shapes(tmp_path):
    """256 envs x 50 steps, 3 yaw classes x 4 speed classes, as cpu_paper's rollouts: a piece is
    a nose-down piece when the pitch of its observations' projected gravity (the env's
    ``roll_pitch`` of the base quaternion), averaged over its first PITCH_STEPS steps, exceeds
    pitch_split. Nose-down starts score lower, so
    the plain groups keep none; their own groups keep the best of each. With start-up groups as
    well the strata multiply (start-up x nose-down), and the layout survives a save and load."""
    from dmpc_jax.envs import obs as obs_lib
    from dmpc_jax.finetune.rwr import PITCH_STEPS
    from dmpc_jax.finetune.selection import select_top

    rng = np.random.default_rng(5)
    t_len, b, split, edges = 50, 256, 0.035, (0.6, 0.7, 0.8)
    bufs = {(k, u): ReplayBuffer(100_000, t_len, yaw_classes=3, speed_edges=edges,
                                 startup_steps=u, pitch_split=k)
            for k, u in ((0.0, 0), (split, 0), (0.0, 250), (split, 250))}  # fmt: skip
    g = obs_lib.OBS_SLICES["gravity"]
    for it in range(1, 9):
        # each env's base pitched about y (nose down > 0) through the iteration, varied a little
        level = rng.uniform(-0.06, 0.12, (1, b))
        level = np.where(np.abs(level - split) < 0.005, level + 0.01, level)  # clear of the split
        pitch = level + rng.uniform(-1e-3, 1e-3, (t_len, b))
        quat = np.stack([np.cos(pitch / 2), 0 * pitch, np.sin(pitch / 2), 0 * pitch], -1)
        np.testing.assert_allclose(obs_lib.roll_pitch(np, quat)[1], pitch, atol=1e-6)
        t = rng.integers(0, 500, (1, b)) + np.arange(t_len)[:, None]
        reward = np.where(pitch[:1] > split, 0.1, 0.2) + 0.01 * rng.random((t_len, b))
        rec = _records(t_len, b, rng, reward=reward.astype(np.float32))
        rec["obs"][..., g] = obs_lib.projected_gravity(np, quat)
        again = rng.random(b) < 0.3  # some envs reset mid-iteration: two pieces
        rec.update(t=t.astype(np.int32), vx=rng.uniform(0.5, 1.0, (t_len, b)),
                   done=again & (np.arange(t_len)[:, None] == 29))  # fmt: skip
        for buf in bufs.values():
            buf.add_rollout(rec, min_len=20, iteration=it)
    plain, down, both = bufs[(0.0, 0)], bufs[(split, 0)], bufs[(split, 250)]
    assert (plain.n_groups, down.n_groups, both.n_groups) == (12, 24, 48)
    np.testing.assert_array_equal(down.score, plain.score)  # the same pieces, regrouped
    np.testing.assert_array_equal(down.group % 12, plain.group)
    nose = down.group >= 12
    first = [
        np.arctan2(o[:PITCH_STEPS, g][:, 0], -o[:PITCH_STEPS, g][:, 2]).mean() for o in down.obs
    ]
    np.testing.assert_array_equal(nose, np.array(first) > split)  # its first steps' pitch
    assert 0.1 < nose.mean() < 0.9
    startup = bufs[(0.0, 250)].group >= 12  # the start-up flag of a start-up-only buffer
    assert startup.any() and not startup.all()
    np.testing.assert_array_equal(both.group, plain.group + 12 * (startup + 2 * nose))
    np.testing.assert_array_equal(both.flags()[0], startup)  # read back from the groups
    np.testing.assert_array_equal(both.flags()[1], nose)
    assert not down.flags()[0].any() and not plain.flags()[1].any()
    top = select_top(plain.score, plain.group, 0.015, 1500, plain.group_sizes())
    assert not nose[top].any()
    top = select_top(down.score, down.group, 0.015, 1500, down.group_sizes())
    for grp in np.unique(down.group[nose]):  # the best nose-down start of each command group
        best = np.flatnonzero(down.group == grp)[np.argmax(down.score[down.group == grp])]
        assert best in top
    both.save(tmp_path / "buffer.npz")
    back = ReplayBuffer.load(tmp_path / "buffer.npz")
    assert back.layout() == both.layout() and back.n_groups == 48
    np.testing.assert_array_equal(back.group_sizes(), both.group_sizes())


def test_return_weights_separate_pieces_that_mean_weights_do_not():
    # METHOD §6 weights by the trajectory return: with per-step rewards ~0.02 (x dt) the mean
    # per-step score hardly varies at temperature 0.02, the return does
    rng = np.random.default_rng(3)
    buf = ReplayBuffer(capacity=10, max_len=50)
    rec = _records(50, 6, rng)
    rec["reward"] = 0.02 + 0.005 * rng.standard_normal(rec["reward"].shape).astype(np.float32)
    buf.add_rollout(rec, min_len=4, iteration=1)
    np.testing.assert_allclose(buf.returns, buf.score * buf.length, rtol=1e-5)
    groups = np.zeros(len(buf), np.int8)
    ess_mean = effective_sample_size(group_weights(buf.score, groups, 0.02))
    ess_return = effective_sample_size(group_weights(buf.returns, groups, 0.02))
    assert ess_mean > 0.95 * len(buf) and ess_return < 0.8 * ess_mean


def test_buffer_save_load_roundtrip_and_corrupt_file(tmp_path):
    rng = np.random.default_rng(2)
    buf = ReplayBuffer(capacity=10, max_len=6)
    buf.add_rollout(_records(6, 4, rng), min_len=3, iteration=7)
    buf.save(tmp_path / "buffer.npz")
    back = ReplayBuffer.load(tmp_path / "buffer.npz")
    for name in ("obs", "action", "reward", "length", "score", "group", "added"):
        np.testing.assert_array_equal(getattr(back, name), getattr(buf, name))
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(RuntimeError, match="unreadable"):
        ReplayBuffer.load(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        ReplayBuffer.load(tmp_path / "missing.npz")


@pytest.fixture(scope="module")
def tiny_nets():
    dcfg = M.diffusion_preset("tiny")
    nets, params = M.init_networks(dcfg, jax.random.PRNGKey(0))
    return dcfg, nets, params


def test_resume_restores_state_and_buffer(tiny_nets, tmp_path):
    import optax

    from dmpc_jax.finetune.update import restore_checkpoint, save_checkpoint

    _, _, params = tiny_nets
    opt = optax.adam(1e-3)
    state = {"params": params, "opt_denoiser": opt.init(params["denoiser"]),
             "opt_value": opt.init(params["value"]), "iteration": jnp.asarray(5, jnp.int32)}  # fmt: skip
    buf = ReplayBuffer(capacity=10, max_len=6)
    buf.add_rollout(_records(6, 4, np.random.default_rng(3)), min_len=3, iteration=5)
    save_checkpoint(tmp_path, state, buf)
    fresh = jax.tree.map(jnp.zeros_like, state)
    restored, rbuf = restore_checkpoint(tmp_path, fresh, ReplayBuffer(10, 6))
    assert int(restored["iteration"]) == 5
    chex_equal = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), restored, state)
    assert all(jax.tree.leaves(chex_equal))
    np.testing.assert_array_equal(rbuf.obs, buf.obs)
    np.testing.assert_array_equal(rbuf.score, buf.score)
    with pytest.raises(ValueError, match="capacity"):
        restore_checkpoint(tmp_path, fresh, ReplayBuffer(99, 6))
    # the planner checkpoint loads like a pretraining run's
    from dmpc_jax.checkpointing import checkpoint_manager

    assert checkpoint_manager(tmp_path, 1, "planner").latest_step() == 5


def test_run_dir_resume_may_extend_iterations_only(tmp_path):
    import dataclasses
    import json

    from dmpc_jax.config import ConfigError, to_dict
    from dmpc_jax.diffusion.artifact import run_pretrain_config
    from dmpc_jax.diffusion.config import pretrain_preset
    from dmpc_jax.finetune.config import finetune_preset
    from dmpc_jax.finetune.loop import prepare_finetune_run

    pre = tmp_path / "pre"
    pre.mkdir()
    (pre / "config.json").write_text(json.dumps(to_dict(pretrain_preset("tiny"))))
    (pre / "scaler.json").write_text(
        json.dumps({k: v.tolist() for k, v in M.paper_scaler().items()})
    )
    robot = {"q_default": [0.1] * 12, "kp": 35.0, "kd": 0.8, "action_scale": 0.25}
    (pre / "robot.json").write_text(json.dumps(robot))  # pretraining writes it
    cfg = dataclasses.replace(finetune_preset("tiny"), pretrained=str(pre))
    run = prepare_finetune_run(cfg, tmp_path / "ft", resume=False, overwrite=False)
    # the run reads like a pretraining run for load_planner, with the same robot constants
    assert run_pretrain_config(run) == pretrain_preset("tiny")
    got = json.loads((run / "robot.json").read_text())
    np.testing.assert_allclose(got["q_default"], robot["q_default"], rtol=1e-6)
    assert (got["kp"], got["kd"], got["action_scale"]) == (35.0, 0.8, 0.25)
    longer = dataclasses.replace(cfg, iterations=cfg.iterations + 5)
    prepare_finetune_run(longer, run, resume=True, overwrite=False)
    assert json.loads((run / "config.json").read_text())["iterations"] == cfg.iterations + 5
    with pytest.raises(ValueError, match="shorten"):
        prepare_finetune_run(cfg, run, resume=True, overwrite=False)
    with pytest.raises(ConfigError):
        prepare_finetune_run(dataclasses.replace(longer, temperature=0.5), run, resume=True,
                             overwrite=False)  # fmt: skip
    with pytest.raises(FileNotFoundError, match="pretrained run"):
        prepare_finetune_run(dataclasses.replace(cfg, pretrained=str(tmp_path / "nope")),
                             tmp_path / "ft2", resume=False, overwrite=False)  # fmt: skip


def test_rollout_state_roundtrip_and_its_fallbacks(tmp_path):
    from dmpc_jax.finetune.update import restore_rollout, save_rollout

    carry = ({"q": jnp.arange(6.0).reshape(3, 2)}, jnp.asarray([True, False, True]),
             jnp.asarray(4, jnp.int32))  # fmt: skip
    fresh = jax.tree.map(jnp.zeros_like, carry)
    assert restore_rollout(tmp_path, 7, fresh)[1] == "no rollout.npz"
    save_rollout(tmp_path, 7, carry)
    got, why = restore_rollout(tmp_path, 7, fresh)
    assert why is None
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), got, carry)))
    got, why = restore_rollout(tmp_path, 8, fresh)  # the checkpoint is newer than the envs
    assert got is fresh and "iteration 7" in why
    other = ({"q": jnp.zeros((4, 2))}, jnp.zeros(4, bool), jnp.asarray(0, jnp.int32))
    got, why = restore_rollout(tmp_path, 7, other)  # n_envs changed
    assert got is other and "layout" in why


def test_the_loop_programs_are_built_once_per_config_and_planner_files(tmp_path, monkeypatch):
    """``finetune`` builds its env, rollout, updates and evaluator once per process for a config
    and pretrained run (a resumed or repeated run reuses the traced functions: the pipeline
    test's resumed run follows the straight one through them); another config, another
    checkpoint or another scaling / robot file builds them anew."""
    import dataclasses
    from types import SimpleNamespace

    import dmpc_jax.finetune.loop as loop_mod
    from dmpc_jax import distributed as dist
    from dmpc_jax.finetune.config import finetune_preset

    built = []
    monkeypatch.setattr(loop_mod, "_PROGRAMS", {})
    monkeypatch.setattr(loop_mod, "make_env", lambda cfg, env_set: built.append(cfg) or "env")
    monkeypatch.setattr(loop_mod, "make_rollout", lambda *a: (lambda k: k, lambda c, k, p: (c, k)))
    monkeypatch.setattr(loop_mod, "make_update", lambda *a: "update")
    pre = tmp_path / "pre"
    pre.mkdir()
    for name in ("config.json", "scaler.json", "robot.json"):
        (pre / name).write_text("{}")
    planner = SimpleNamespace(source=f"{pre}:4@aaaa", dcfg=SimpleNamespace(num_steps=4), nets=None,
                              scaler={}, plan_fn=lambda scfg: None,
                              task_args=lambda spec: (None, None, None))  # fmt: skip
    cfg = dataclasses.replace(finetune_preset("tiny"), pretrained=str(pre))
    mesh = dist.global_mesh()
    first = loop_mod._programs(cfg, planner, mesh)
    assert loop_mod._programs(cfg, planner, mesh) is first and len(built) == 1
    (pre / "scaler.json").write_text('{"shift": [1.0]}')  # the scaling baked into the plan
    assert loop_mod._programs(cfg, planner, mesh) is not first and len(built) == 2
    planner.source = f"{pre}:8@bbbb"  # a newer checkpoint
    loop_mod._programs(cfg, planner, mesh)
    loop_mod._programs(dataclasses.replace(cfg, n_envs=8), planner, mesh)
    assert len(built) == 4 and len(loop_mod._PROGRAMS) == 1  # one config kept at a time
    demo = tmp_path / "demo"  # the demonstrator run whose env the rollout and evaluator use
    demo.mkdir()
    (demo / "config.json").write_text("{}")
    cfg = dataclasses.replace(cfg, demonstrator_run=str(demo))
    loop_mod._programs(cfg, planner, mesh)
    (demo / "config.json").write_text('{"env": {}}')  # retrained at the same path
    loop_mod._programs(cfg, planner, mesh)
    assert len(built) == 6
