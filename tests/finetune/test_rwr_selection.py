"""RWR at the authors' settings (METHOD §6, their diffuser_rollout_storage.py), with the shapes
the cpu_paper run uses: three yaw classes, random draws from the kept union, weights normalised
per class within each minibatch, the update volume in epochs, the return arm on the mean's
scale."""

import dataclasses
import functools

import numpy as np
import pytest

from dmpc_jax.finetune.config import FinetuneConfig, finetune_preset
from dmpc_jax.finetune.rwr import ReplayBuffer
from dmpc_jax.finetune.selection import (
    command_group,
    effective_sample_size,
    group_weights,
    minibatch_weights,
    select_pieces,
    select_top,
    yaw_group,
)
from dmpc_jax.finetune.update import (
    anchored,
    select_for_update,
    train_network,
    update_start,
    update_steps,
)

PAPER = finetune_preset("cpu_paper")


def test_the_cpu_paper_preset_is_the_paper_scale():
    c = PAPER
    assert c.n_envs * c.steps_per_iter * c.iterations == 4096 * 50 * 150  # 30.7 M env steps
    assert c.n_envs * c.steps_per_iter * c.denoiser_every == pytest.approx(1.0e6, rel=0.03)
    assert (c.guidance, c.action_noise, c.top_quantile, c.buffer_size) == ((0.0, 1.0), 0.3,
                                                                          0.015, 100_000)  # fmt: skip
    assert (c.yaw_classes, c.selection, c.weight_scope, c.env_model) == (3, "random",
                                                                         "minibatch", "strict")  # fmt: skip
    assert c.replan_at_reset and c.value_every == 1


def test_three_yaw_classes_put_straight_walking_in_a_class_of_its_own():
    wz = np.array([-0.7, -0.0, 0.0, 0.3, -1e-3])
    np.testing.assert_array_equal(yaw_group(wz, 3), [0, 1, 1, 2, 0])
    np.testing.assert_array_equal(yaw_group(wz, 2), [0, 1, 1, 1, 0])  # straight shares with left
    with pytest.raises(ValueError, match="yaw classes"):
        yaw_group(wz, 4)


def _paper_buffer_scores(rng, n=100_000):
    groups = rng.choice(np.array([0, 1, 2], np.int8), size=n, p=[0.45, 0.1, 0.45])
    return rng.normal(0.2, 0.05, n).astype(np.float32), groups


def test_random_selection_draws_the_cap_from_the_union_of_each_class_top():
    rng = np.random.default_rng(0)
    scores, groups = _paper_buffer_scores(rng)
    union = set(select_top(scores, groups, 0.015, len(scores) * 3).tolist())
    # 1.5% of each class: ceil per class, so the union is 1500-1502 of 100 k
    assert 1500 <= len(union) <= 1503
    picked = select_pieces(scores, groups, 0.015, 1000, "random", np.random.default_rng(1))
    assert len(picked) == 1000 and len(set(picked.tolist())) == 1000
    assert set(picked.tolist()) <= union
    # the straight class is kept at its own top 1.5%, not crowded out by the turning ones
    straight = np.flatnonzero(groups == 1)
    assert sum(i in union for i in straight) == int(np.ceil(0.015 * len(straight)))
    # "best" keeps the cap split evenly over the classes, best first
    best = select_pieces(scores, groups, 0.015, 1500, "best")
    assert all((groups[best] == g).sum() <= 500 for g in range(3))
    with pytest.raises(ValueError, match="selection"):
        select_pieces(scores, groups, 0.015, 1500, "worst")


def test_minibatch_weights_are_a_softmax_per_class_within_each_batch():
    rng = np.random.default_rng(2)
    steps, batch = PAPER.steps_per_call, PAPER.batch_size
    scores = rng.normal(0.2, 0.05, (steps, batch))
    groups = rng.integers(0, 3, (steps, batch)).astype(np.int8)
    w = minibatch_weights(scores, groups, PAPER.temperature)
    assert w.shape == (steps, batch) and (w >= 0).all()
    for i in range(steps):
        for g in range(3):
            m = groups[i] == g
            np.testing.assert_allclose(w[i, m].mean(), 1.0, rtol=1e-5)
        np.testing.assert_allclose(w[i], group_weights(scores[i], groups[i], 0.02), rtol=1e-6)


def _buffer(rng, n_pieces=40, max_len=50, lengths=None):
    buf = ReplayBuffer(capacity=1000, max_len=max_len, yaw_classes=3)
    t = max_len
    rec = {
        "obs": rng.normal(size=(t, n_pieces, 49)).astype(np.float32),
        "action": rng.normal(size=(t, n_pieces, 12)).astype(np.float32),
        "reward": (0.2 + 0.02 * rng.standard_normal((t, n_pieces))).astype(np.float32),
        "wz": rng.choice(np.array([-0.5, 0.0, 0.5], np.float32), size=(t, n_pieces)),
        "valid": np.ones((t, n_pieces), bool),
        "done": np.zeros((t, n_pieces), bool),
    }
    if lengths is not None:  # pieces that end early: an episode end after ``lengths[e]`` steps
        for e, n in enumerate(lengths):
            rec["valid"][n:, e] = False
    buf.add_rollout(rec, 24, 1)
    return buf


def test_return_arm_on_the_mean_scale_weighs_full_pieces_as_the_mean_arm():
    rng = np.random.default_rng(3)
    buf = _buffer(rng)
    assert set(buf.group.tolist()) <= {0, 1, 2} and (buf.length == 50).all()
    as_return = group_weights(buf.returns / 50, buf.group, 0.02)
    as_mean = group_weights(buf.score, buf.group, 0.02)
    np.testing.assert_allclose(as_return, as_mean, rtol=1e-4)
    # the raw return at 0.02 puts nearly all weight on one piece per class (ESS ~ classes)
    raw = group_weights(buf.returns, buf.group, 0.02)
    assert effective_sample_size(raw) < 4 < 0.5 * effective_sample_size(as_mean)
    # a shorter piece with the same mean weighs less under the return arm
    short = _buffer(np.random.default_rng(4), n_pieces=4, lengths=[50, 50, 50, 30])
    short.reward[:] = 0.2 * (np.arange(50) < short.length[:, None])
    short.group[:] = 0
    w = group_weights(short.returns / 50, short.group, 0.02)
    assert w[3] < w[0] == pytest.approx(w[1])


def test_update_volume_in_epochs_over_the_kept_windows():
    rng = np.random.default_rng(5)
    buf = _buffer(rng, n_pieces=30)
    keep = np.arange(30)
    n_windows = 30 * (50 - 24 + 1)  # 810
    cfg = dataclasses.replace(PAPER, update_epochs=10.0)
    steps = update_steps(cfg, buf, keep, 24)
    assert steps % cfg.steps_per_call == 0
    assert steps * cfg.batch_size >= 10 * n_windows > (steps - cfg.steps_per_call) * cfg.batch_size
    assert update_steps(dataclasses.replace(cfg, update_epochs=0.0), buf, keep, 24) == (
        cfg.denoiser_steps
    )


def _batches_of_two_calls(buf, rng, cfg, offline=None) -> list[dict]:
    """The stacks of batches ``train_network`` hands the update in two calls over every piece
    of ``buf``, weighted per minibatch (the update itself is a recorder)."""
    seen = []

    def fake_update(params, opt_state, batches, key):
        seen.append(batches)
        return params, opt_state, {"loss": np.float32(0.0)}

    def weigh(piece):
        return minibatch_weights(buf.score[piece], buf.group[piece], cfg.temperature)

    train_network(fake_update, {}, None, buf, rng, np.zeros(2, np.uint32), cfg,
                  np.arange(len(buf)), None, 2 * cfg.steps_per_call, 24, batch_weights=weigh,
                  offline=offline)  # fmt: skip
    return seen


def test_train_network_feeds_the_per_minibatch_weights_to_the_update():
    rng = np.random.default_rng(6)
    buf = _buffer(rng, n_pieces=60)
    cfg = PAPER
    seen = _batches_of_two_calls(buf, rng, cfg)
    assert len(seen) == 2
    for b in seen:
        assert "piece" not in b
        assert b["obs"].shape == (cfg.steps_per_call, cfg.batch_size, 24, 49)
        assert b["weight"].shape == (cfg.steps_per_call, cfg.batch_size)
        assert not np.allclose(b["weight"], 1.0)  # weighted, not uniform
        np.testing.assert_allclose(b["weight"].mean(1), 1.0, atol=0.35)


def test_config_rejects_unknown_choices():
    for field, bad in (("selection", "worst"), ("weight_scope", "all"), ("env_model", "soft"),
                       ("yaw_classes", 4), ("eval_rules", ("strict", "easy")),
                       ("rollout_sampler", "cache2"), ("fall_pieces", "trim"),
                       ("update_from", "scratch")):  # fmt: skip
        with pytest.raises(ValueError, match=field):
            FinetuneConfig(**{field: bad})


def test_the_rollout_env_takes_the_configs_overrides_and_rejects_a_typo():
    from dmpc_jax.config import ConfigError
    from dmpc_jax.finetune.rollout import make_env

    cfg = FinetuneConfig(env_set=("randomization.motor_strength=[0.9, 0.95]",))
    env = make_env(cfg, cfg.env_set)  # as the finetuning loop builds its rollout env
    assert env.cfg.randomization.motor_strength == (0.9, 0.95)
    assert env.cfg.randomization.friction == make_env(FinetuneConfig()).cfg.randomization.friction
    with pytest.raises(ConfigError, match="motor_strenght"):
        FinetuneConfig(env_set=("randomization.motor_strenght=[0.9, 0.95]",))


@pytest.mark.slow
def _row_planner():
    """``(plan_fn, Task)`` of a fake planner whose row h is 0.01 (h + 1) on every joint: the
    executed action tells which plan row runs."""
    import flax
    import jax
    import jax.numpy as jnp

    @flax.struct.dataclass
    class Task:
        guidance_scale: jax.Array

    @flax.struct.dataclass
    class Out:
        action: jax.Array

    def plan_fn(params, s, task, cons, key):
        return Out(jnp.tile(0.01 * (jnp.arange(24.0)[:, None] + 1.0), (1, 12)))

    return plan_fn, Task


@pytest.fixture(scope="module")
def row_rollout(env):
    """``run(**settings) -> records`` of ``_row_planner``'s rollout (4 envs, a plan every 3
    steps, 2 reset plans per step, every env timing out once at the same step) on the same keys,
    with ``record_action``, ``noise_at``, ``action_noise`` and ``replan_at_reset`` passed as
    arrays (``rollout_options``): one compilation serves every test below that sets them."""
    import jax
    import jax.numpy as jnp

    from dmpc_jax.finetune.rollout import make_rollout, rollout_options

    plan_fn, Task = _row_planner()
    cfg = dataclasses.replace(finetune_preset("tiny"), n_envs=4, execute=3, reset_plans=2,
                              steps_per_iter=env.cfg.episode_steps + 8)  # fmt: skip
    start, run = make_rollout(cfg, env, plan_fn, Task(jnp.zeros(())), None)
    carry = start(jax.random.PRNGKey(0))

    def records(**settings):
        opts = rollout_options(dataclasses.replace(cfg, **settings), arrays=True)
        _, rec = run(carry, jax.random.PRNGKey(1), None, opts)
        return cfg, jax.tree.map(np.asarray, rec)

    records.traces = lambda: run._cache_size()  # compilations of ``run`` so far
    return records


@pytest.mark.parametrize("replan", [True, False])
def test_a_reset_env_replans_at_its_next_step_and_joins_the_timeline(row_rollout, replan):
    cfg, rec = row_rollout(action_noise=0.0, replan_at_reset=replan)
    e, steps = cfg.execute, cfg.steps_per_iter
    assert row_rollout.traces() == 1  # every setting runs the one compiled rollout
    done, valid = np.asarray(rec["done"]), np.asarray(rec["valid"])
    row = np.rint(np.asarray(rec["action"])[..., 0] / 0.01).astype(int) - 1  # plan row, -1: none
    t_end = int(np.flatnonzero(done.all(1))[0])
    index = np.arange(steps) % e  # the batch's timeline: plans at t = 0, e, 2e, ...
    after = np.arange(t_end + 1, steps)
    if replan:  # two envs plan at once, the other two a step later; each runs its plan from row 0
        assert valid[t_end + 1].sum() == 2 and valid[t_end + 2].all()
        for env_id in range(4):
            t0 = t_end + 1 if valid[t_end + 1, env_id] else t_end + 2
            t1 = t0 + max(int(np.argmax(index[t0 + 1 :] == 0)) + 1, 1)  # next batch plan
            np.testing.assert_array_equal(row[t0:t1, env_id], np.arange(t1 - t0))
    else:  # the fresh envs hold still, unrecorded, until the batch's next plan
        first = after[index[after] == 0][0]
        assert not valid[t_end + 1 : first].any() and valid[first:].all()
        np.testing.assert_array_equal(row[t_end + 1 : first], -1)
    # the batch timeline goes on for every env that is not fresh
    ok = valid[after]
    np.testing.assert_array_equal(row[after][ok & (index[after] == 0)[:, None]], 0)
    # each recorded step's plan age is the plan row it executes (fresh envs restart theirs)
    np.testing.assert_array_equal(np.asarray(rec["age"])[valid], row[valid])
    # t counts each step since its env's reset: up to the time-out, then again from 0
    t = np.asarray(rec["t"])
    np.testing.assert_array_equal(t[: t_end + 1], np.tile(np.arange(t_end + 1)[:, None], (1, 4)))
    np.testing.assert_array_equal(
        t[t_end + 1 :], np.tile(np.arange(steps - t_end - 1)[:, None], (1, 4))
    )


def _obs_tag(s, xp=np):
    """A tag below one plan row (0.01) that names the observation a plan was made from."""
    return 0.004 * xp.mod(1000.0 * xp.sum(s, axis=-1), 1.0)


def test_async_rollouts_run_each_plan_from_row_d_as_the_robot_does(env):
    """``margin`` D > 0: a plan made from the state at step t (age 0) runs from step t + D at
    row D, the rows in between come from the previous plan, and an env served after its reset
    runs its own plan, made from its post-reset state, from row 0 on, continued across the
    switch, until a later batch plan enters."""
    import jax
    import jax.numpy as jnp

    from dmpc_jax.finetune.rollout import make_rollout

    plan_fn, Task = _row_planner()

    def tagged(params, s, task, cons, key):  # rows 0.01 (h + 1), tagged by the plan's state
        out = plan_fn(params, s, task, cons, key)
        return out.replace(action=out.action + _obs_tag(s, jnp))

    # E = 5, D = 2: a plan every 3 steps. Every env times out at the same step and is served
    # at index 4 (two envs) or 2 (the other two, a step later; before and after the batch plan
    # at index E - D = 3); a hundred steps later the late pair's turn falls on index E - D
    e, d = 5, 2
    steps = 2 * env.cfg.episode_steps + 9
    cfg = dataclasses.replace(finetune_preset("tiny"), n_envs=4, steps_per_iter=steps, execute=e,
                              margin=d, action_noise=0.0, replan_at_reset=True,
                              reset_plans=2)  # fmt: skip
    start, run = make_rollout(cfg, env, tagged, Task(jnp.zeros(())), None)
    _, rec = run(start(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), None)
    valid, age, done = np.asarray(rec["valid"]), np.asarray(rec["age"]), np.asarray(rec["done"])
    obs, a = np.asarray(rec["obs"]), np.asarray(rec["action"])[..., 0]
    row = np.rint(a / 0.01).astype(int) - 1
    tag = a - 0.01 * (row + 1)
    t_end = int(np.flatnonzero(done.all(1))[0])
    index = d + (np.arange(steps) - d) % (e - d)  # the batch's index from step D on
    assert valid[: t_end + 1].all() and valid[t_end + 1].sum() == 2 and valid[t_end + 2].all()
    assert index[t_end + 1] == 4 and index[t_end + 2] == 2
    np.testing.assert_array_equal(row[:e, 0], np.arange(e))  # the first plan: rows 0 .. E-1
    batch_plans = np.flatnonzero((age == 0).all(1))
    np.testing.assert_array_equal(batch_plans[:3], [0, e - d, 2 * (e - d)])
    late, ends = [], []  # would the plan made one step later have the same tag?
    for env_id in range(4):
        made = np.flatnonzero(valid[:, env_id] & (age[:, env_id] == 0))
        # served: the first plan after a reset (the previous step ended or was not planned)
        served = {0} | {t for t in made if t and (done[t - 1, env_id] or not valid[t - 1, env_id])}
        assert len(served) == 3
        ends.append(sorted(served)[-1])
        for t in np.flatnonzero(valid[:, env_id]):
            src = max([m for m in made if m <= t - d] + [s for s in served if s <= t])
            assert row[t, env_id] == t - src, (env_id, t, src)
            # the plan running is the one made from the state at its source step
            np.testing.assert_allclose(tag[t, env_id], _obs_tag(obs[src, env_id]), atol=2e-5)
            if e <= src < steps - 1:  # (the states at rest before the first plan can repeat)
                late.append(abs(tag[t, env_id] - _obs_tag(obs[src + 1, env_id])) < 2e-5)
    # the second resets (all four envs time out together again): two served at index 2, the
    # other two a step later at index E - D = 3, where the batch plan made at that step serves them
    assert sorted(index[ends].tolist()) == [2, 2, 3, 3], ends
    assert np.mean(late) < 0.25  # the tags mostly tell the plan's state from the next step's
    with pytest.raises(ValueError, match="margin"):
        dataclasses.replace(cfg, replan_at_reset=False)
    with pytest.raises(ValueError, match="plan age"):
        dataclasses.replace(cfg, window_starts=f"age{e - d}")


def test_a_run_moved_without_its_buffer_resumes_from_the_kept_set(tmp_path):
    import jax.numpy as jnp

    from dmpc_jax.finetune.update import restore_checkpoint, save_checkpoint

    rng = np.random.default_rng(7)
    buf = _buffer(rng, n_pieces=40)
    kept = select_top(buf.score, buf.group, 0.1, 1000)
    state = {"params": {"w": jnp.arange(3.0)}, "iteration": jnp.asarray(4, jnp.int32)}
    save_checkpoint(tmp_path, state, buf, kept=kept)
    (tmp_path / "buffer.npz").unlink()  # what stays behind when only the commit moves
    template = {"params": {"w": jnp.zeros(3)}, "iteration": jnp.asarray(0, jnp.int32)}
    restored, rbuf = restore_checkpoint(tmp_path, template, ReplayBuffer(1000, 50, yaw_classes=3))
    assert int(restored["iteration"]) == 4
    np.testing.assert_array_equal(rbuf.obs, buf.obs[kept])
    np.testing.assert_array_equal(rbuf.score, buf.score[kept])
    assert rbuf.yaw_classes == 3 and rbuf.capacity == 1000
    np.testing.assert_array_equal(rbuf.group_sizes(), buf.group_sizes())  # the rest still counts
    with pytest.raises(ValueError, match="yaw_classes"):
        restore_checkpoint(tmp_path, template, ReplayBuffer(1000, 50, yaw_classes=2))
    with pytest.raises(ValueError, match="startup_steps"):  # start-up groups are a layout too
        restore_checkpoint(
            tmp_path, template, ReplayBuffer(1000, 50, yaw_classes=3, startup_steps=5)
        )


def _rows(rng, k, first_seq, it, max_len=6):
    return {"obs": rng.normal(size=(k, max_len, 49)).astype(np.float32),
            "action": np.zeros((k, max_len, 12), np.float32),
            "reward": np.zeros((k, max_len), np.float32), "length": np.full(k, max_len, np.int32),
            "score": rng.choice(np.float32([0.1, 0.2, 0.3, 0.4]), k),  # ties: newer first
            "group": rng.integers(0, 3, k).astype(np.int8), "added": np.full(k, it, np.int32),
            "seq": np.arange(first_seq, first_seq + k, dtype=np.int64)}  # fmt: skip


@pytest.mark.parametrize("keep", ["best", "newest"])
def test_at_capacity_pieces_are_replaced_in_place_with_the_same_survivors(keep):
    # the reference: every piece ever added, the capacity best (newer first on ties) or newest
    rng = np.random.default_rng(8)
    buf = ReplayBuffer(capacity=50, max_len=6, keep=keep, yaw_classes=3)
    every = []
    for it in range(12):
        rows = _rows(rng, 13, 13 * it, it)
        every += list(zip(rows["score"].tolist(), rows["seq"].tolist(), strict=True))
        buf.insert(rows)
        if it == 4:
            storage = buf._store["obs"]
        if keep == "best":
            want = sorted(every, key=lambda r: (-r[0], -r[1]))[:50]
        else:
            want = sorted(every, key=lambda r: -r[1])[:50]
        got = list(zip(buf.score.tolist(), buf.seq.tolist(), strict=True))
        assert sorted(got) == sorted(want)
    assert buf._store["obs"] is storage  # no reallocation once full: only new pieces copied
    # each held piece still carries its own data
    seq_of = {s: i for i, s in enumerate(buf.seq.tolist())}
    last = _rows(np.random.default_rng(8), 13, 0, 0)  # the first batch, regenerated
    for j, s in enumerate(last["seq"].tolist()):
        if s in seq_of:
            np.testing.assert_array_equal(buf.obs[seq_of[s]], last["obs"][j])


def test_a_moved_kept_set_keeps_the_quantile_of_the_whole_buffer():
    rng = np.random.default_rng(9)
    full = ReplayBuffer(capacity=1000, max_len=6, yaw_classes=3)
    for it in range(8):
        full.insert(_rows(rng, 120, 120 * it, it))
    assert len(full) == 960
    kept = select_top(full.score, full.group, 0.05, 10**6, full.group_sizes())
    moved = full.subset(kept, count_rest=True)
    np.testing.assert_array_equal(moved.group_sizes(), full.group_sizes())
    again = select_top(moved.score, moved.group, 0.05, 10**6, moved.group_sizes())
    assert len(again) == len(kept)  # not 5% of the few pieces it holds
    # new pieces displace absent ones first, so the held pieces survive as the buffer refills
    moved.insert(_rows(rng, 120, 10_000, 9))
    assert len(moved) == len(kept) + 120
    assert moved.group_sizes().sum() == 1000 and moved.absent.sum() == 1000 - len(moved)


def test_the_denoiser_rate_warms_up_from_zero():
    import jax.numpy as jnp
    import optax

    from dmpc_jax.finetune.update import finetune_optimizer

    params = {"w": jnp.ones(3)}
    grads = {"w": jnp.full(3, 0.5)}
    for warm, moved in ((100, False), (0, True)):
        opt = finetune_optimizer(dataclasses.replace(PAPER, lr_warmup_steps=warm))
        upd, _ = opt.update(grads, opt.init(params), params)
        new = optax.apply_updates(params, upd)
        assert bool(jnp.any(new["w"] != params["w"])) == moved
    with pytest.raises(ValueError, match="ema_decay"):
        FinetuneConfig(ema_decay=1.0)


def test_speed_edges_split_each_yaw_class_by_the_commanded_speed(tmp_path):
    """At the cpu_paper layout (256 envs x 50 steps, H = 24), with edges at 0.7 and 0.9 m/s the
    pieces of a straight 1.0 m/s command and of a straight 0.6 m/s command fall in different
    groups, each with its own top quantile, and the groups survive a save and a load."""
    from dmpc_jax.envs import obs as obs_lib

    edges = (0.7, 0.9)
    np.testing.assert_array_equal(
        command_group(
            np.array([-0.5, 0.0, 0.0, 0.0, 0.4]), np.array([1.0, 0.6, 0.8, 0.95, 0.5]), 3, edges
        ),  # fmt: skip
        [0 * 3 + 2, 1 * 3 + 0, 1 * 3 + 1, 1 * 3 + 2, 2 * 3 + 0],
    )
    np.testing.assert_array_equal(command_group(np.array([0.0]), np.array([2.0]), 3), [1])
    t, b = 50, 256
    rng = np.random.default_rng(0)
    vx = np.where(np.arange(b) < b // 2, 1.0, 0.6).astype(np.float32)
    obs = rng.normal(size=(t, b, 49)).astype(np.float32)
    obs[..., obs_lib.OBS_SLICES["command"].start] = vx * obs_lib.COMMAND_SCALE[0]
    rec = {"obs": obs, "action": np.zeros((t, b, 12), np.float32),
           "reward": np.where(vx > 0.8, 0.1, 0.3)[None].repeat(t, 0).astype(np.float32),
           "done": np.zeros((t, b), bool), "valid": np.ones((t, b), bool),
           "wz": np.zeros((t, b), np.float32)}  # fmt: skip
    buf = ReplayBuffer(1000, t, yaw_classes=3, speed_edges=edges)
    assert buf.add_rollout(rec, 24, 1) == b
    assert buf.n_groups == 9
    fast, slow = 1 * 3 + 2, 1 * 3 + 0
    np.testing.assert_array_equal(buf.group_sizes()[[slow, fast]], [b // 2, b // 2])
    # the fast pieces score lower (0.1 against 0.3), yet the top 10% keeps as many of each
    keep = select_top(buf.score, buf.group, 0.1, 1000, buf.group_sizes())
    assert (buf.group[keep] == fast).sum() == (buf.group[keep] == slow).sum() > 0
    buf.save(tmp_path / "b.npz")
    back = ReplayBuffer.load(tmp_path / "b.npz")
    assert back.speed_edges == edges and back.n_groups == 9
    np.testing.assert_array_equal(back.group, buf.group)
    with pytest.raises(ValueError, match="speed_edges"):
        dataclasses.replace(finetune_preset("cpu_paper"), speed_edges=(0.9, 0.7))


class _Offline:
    """Stands for the offline dataset's WindowSampler: windows whose obs are all 7."""

    def sample(self, rng, n):
        return {"obs": np.full((n, 24, 49), 7.0, np.float32),
                "action": np.zeros((n, 24, 12), np.float32), "reward": np.zeros((n, 24), np.float32)}  # fmt: skip


def test_every_rwr_batch_mixes_in_its_offline_share_at_the_paper_layout():
    """batch 256, 20 steps per call (the cpu_paper preset), half the rows offline: in every batch
    of every call rows 128.. are offline windows of weight 1, rows ..128 the kept pieces' windows
    with the per-minibatch weights; an epoch over the kept windows takes about twice the steps."""
    rng = np.random.default_rng(7)
    buf = _buffer(rng, n_pieces=60)
    cfg = dataclasses.replace(PAPER, offline_fraction=0.5, dataset="data/x")
    assert (cfg.batch_size, cfg.steps_per_call) == (256, 20)
    seen = _batches_of_two_calls(buf, rng, cfg, offline=_Offline())
    assert len(seen) == 2
    for b in seen:
        assert b["obs"].shape == (20, 256, 24, 49) and b["weight"].shape == (20, 256)
        off = (b["obs"] == 7.0).all(axis=(2, 3))
        np.testing.assert_array_equal(off, np.arange(256)[None].repeat(20, 0) >= 128)
        np.testing.assert_array_equal(b["weight"][:, 128:], 1.0)
        assert not np.allclose(b["weight"][:, :128], 1.0)
    plain = dataclasses.replace(cfg, offline_fraction=0.0, update_epochs=10.0)
    mixed = dataclasses.replace(cfg, update_epochs=10.0)
    keep = np.arange(60)
    n_windows = int((buf.length - 24 + 1).sum())
    for c, rows in ((plain, 256), (mixed, 128)):  # the kept windows' visits, not the steps, stay
        steps = update_steps(c, buf, keep, 24)
        assert steps * rows >= 10 * n_windows > (steps - c.steps_per_call) * rows
    with pytest.raises(ValueError, match="needs a dataset"):
        dataclasses.replace(PAPER, offline_fraction=0.5)
    with pytest.raises(ValueError, match="offline_fraction"):
        dataclasses.replace(PAPER, offline_fraction=1.0, dataset="data/x")


def test_offline_windows_split_only_the_pretraining_runs_own_data(tmp_path):
    """The pretrained run's dataset: its training envs (the held-out ones stay unseen); any
    other dataset (the demonstrator's recoveries): every env, less the falling episodes on
    ``offline_falls`` drop."""
    from helpers import synthetic_dataset

    from dmpc_jax.config import save_json
    from dmpc_jax.diffusion.config import PretrainConfig
    from dmpc_jax.diffusion.train import split_envs
    from dmpc_jax.finetune.update import offline_windows

    own = synthetic_dataset(tmp_path / "own", E=8, T=80, done_at=())
    other = synthetic_dataset(tmp_path / "other", E=8, T=80, done_at=((5, 30),))
    term = np.zeros((8, 80), bool)
    term[5, 30] = True
    np.save(other / "terminated.npy", term)
    run = tmp_path / "run"
    run.mkdir()
    save_json(PretrainConfig(dataset=str(own), holdout_fraction=0.25, seed=3), run / "config.json")
    train, hold = split_envs(8, 0.25, 3)
    assert len(hold) == 2
    envs = lambda s: set(s.starts[:, 0].tolist())  # noqa: E731
    assert envs(offline_windows(run, own, 24)) == set(train.tolist())
    assert offline_windows(run, other, 24).envs is None  # what the loop logs
    kept = offline_windows(run, other, 24)
    assert envs(kept) == set(range(8))
    assert ((kept.starts[:, 0] == 5) & (kept.starts[:, 1] <= 30)).any()
    dropped = offline_windows(run, other, 24, drop_falls=True)
    assert envs(dropped) == set(range(8))  # env 5's cut-off episode after its fall stays
    assert not ((dropped.starts[:, 0] == 5) & (dropped.starts[:, 1] <= 30)).any()
    # a concatenation holding the pretraining data (its envs cut in two) keeps its held-out
    # envs out too: rows 8 + 2 i and 8 + 2 i + 1 of held-out env i
    from dmpc_jax.data.dataset import concatenate

    short = synthetic_dataset(tmp_path / "short", E=8, T=40, done_at=())
    both = concatenate(tmp_path / "both", [short, own]).path
    rows = {8 + 2 * i + j for i in hold.tolist() for j in (0, 1)}
    assert envs(offline_windows(run, both, 24)) == set(range(8 + 16)) - rows
    assert offline_windows(run, concatenate(tmp_path / "two", [short, other]).path, 24).envs is None
    with pytest.raises(ValueError, match="offline_falls"):
        dataclasses.replace(PAPER, offline_falls="some")


def _falling_rollout(rng, t=50, b=256, fall_at=None):
    """[T, B] records at the cpu_paper layout (256 envs x 50 steps, three yaw classes) where the
    envs of ``fall_at`` {env: step} fall at that step (done and terminated) after the best
    per-step rewards of the rollout, so that their pieces score in the top quantile."""
    rec = {
        "obs": rng.normal(size=(t, b, 49)).astype(np.float32),
        "action": rng.normal(size=(t, b, 12)).astype(np.float32),
        "reward": (0.2 + 0.01 * rng.standard_normal((t, b))).astype(np.float32),
        "wz": np.repeat(rng.choice(np.array([-0.5, 0.0, 0.5], np.float32), size=b)[None], t, 0),
        "valid": np.ones((t, b), bool),
        "done": np.zeros((t, b), bool),
        "terminated": np.zeros((t, b), bool),
    }
    for e, k in (fall_at or {}).items():
        rec["reward"][:k, e] = 0.3  # the best tracking of the rollout until the fall
        rec["reward"][k, e] = 0.3 - 0.12  # the fall's step: termination and collision
        rec["done"][k, e] = rec["terminated"][k, e] = True
        rec["valid"][k + 1 :, e] = False  # the env resets and waits for its next plan
    return rec


def test_pieces_that_end_in_a_fall_are_recorded_and_survive_save_and_load(tmp_path):
    rng = np.random.default_rng(0)
    rec = _falling_rollout(rng, fall_at={3: 30, 7: 45})
    rec["done"][30, 9] = True  # an episode that timed out (done, not terminated): no fall
    rec["valid"][31:, 9] = False
    buf = ReplayBuffer(100_000, 50, yaw_classes=3)
    assert buf.add_rollout(rec, 24, 1) == 256
    ends = {int(s): bool(f) for s, f in zip(buf.seq, buf.fell, strict=True)}
    assert [s for s, f in ends.items() if f] == [3, 7]  # pieces arrive in env order
    assert buf.length[3] == buf.length[9] == 31 and buf.length[7] == 46
    buf.save(tmp_path / "b.npz")
    back = ReplayBuffer.load(tmp_path / "b.npz")
    np.testing.assert_array_equal(back.fell, buf.fell)
    # a buffer saved before falls were recorded loads with none marked
    with np.load(tmp_path / "b.npz") as f:
        old = {k: f[k] for k in f.files if k != "fell"}
    np.savez(tmp_path / "old.npz", **old)
    assert not ReplayBuffer.load(tmp_path / "old.npz").fell.any()


@pytest.mark.parametrize("selection", ["best", "random"])
def test_dropping_fall_pieces_keeps_them_out_of_the_update_but_in_the_quantile(selection):
    rng = np.random.default_rng(1)
    buf = ReplayBuffer(100_000, 50, yaw_classes=3)
    falls = {
        int(e): int(k) for e, k in zip(range(0, 256, 16), rng.integers(24, 49, 16), strict=True)
    }
    for it in range(1, 21):  # 20 iterations: about 5,000 pieces, 1.5% of them ~ 77
        buf.add_rollout(_falling_rollout(rng, fall_at=falls), 24, it)
    cfg = dataclasses.replace(PAPER, selection=selection)
    kept, top = select_for_update(cfg, buf, np.random.default_rng(2))
    assert buf.fell[kept].mean() > 0.5  # the mean per-step reward ranks the falls on top
    cfg = dataclasses.replace(cfg, fall_pieces="drop")
    dropped, top_d = select_for_update(cfg, buf, np.random.default_rng(2))
    assert not buf.fell[dropped].any()
    np.testing.assert_array_equal(top_d, top)  # the logged top quantile keeps its falls
    assert buf.fell[top].mean() > 0.5
    # the same number per class: the quantile is still of every piece, falls included
    np.testing.assert_array_equal(
        np.bincount(buf.group[dropped], minlength=3), np.bincount(buf.group[kept], minlength=3)
    )
    with pytest.raises(ValueError, match="eligible"):
        select_top(buf.score, buf.group, 0.015, 1500, eligible=np.ones(3, bool))


@pytest.mark.parametrize("with_ema", [True, False])
def test_an_update_from_the_pretrained_planner_starts_from_it_with_fresh_moments(with_ema):
    den0, opt0 = {"w": np.zeros(3)}, ("fresh",)
    params, opt = {"denoiser": {"w": np.ones(3)}, "value": {"v": np.ones(2)}}, ("moved",)
    ema = {"den": {"w": np.full(3, 0.5)}} if with_ema else {}
    cfg = dataclasses.replace(PAPER, update_from="current")
    assert update_start(cfg, params, opt, ema, (den0, opt0)) == (params, opt)
    assert not with_ema or ema["den"]["w"][0] == 0.5
    cfg = dataclasses.replace(PAPER, update_from="pretrained")
    p, o = update_start(cfg, params, opt, ema, (den0, opt0))
    assert p["denoiser"] is den0 and p["value"] is params["value"] and o is opt0
    assert ema == ({"den": den0} if with_ema else {})


@pytest.mark.parametrize("with_ema", [True, False])
def test_an_update_from_the_acting_planner_starts_from_it_with_fresh_moments(with_ema):
    """update_from acting: the update trains from the denoiser the planner acted with (not the
    trained weights, not the pretrained ones), with the fresh moments and the EMA reset to it;
    without that denoiser it refuses."""
    den0, opt0 = {"w": np.zeros(3)}, ("fresh",)
    params, opt = {"denoiser": {"w": np.ones(3)}, "value": {"v": np.ones(2)}}, ("moved",)
    ema = {"den": {"w": np.full(3, 0.5)}} if with_ema else {}
    mixed = anchored(den0, ema["den"] if with_ema else params["denoiser"], 0.4)
    cfg = dataclasses.replace(PAPER, update_from="acting", anchor=0.4)
    p, o = update_start(cfg, params, opt, ema, (den0, opt0), mixed)
    assert p["denoiser"] is mixed and p["value"] is params["value"] and o is opt0
    np.testing.assert_allclose(p["denoiser"]["w"], 0.3 if with_ema else 0.6)
    assert ema == ({"den": mixed} if with_ema else {})
    with pytest.raises(ValueError, match="acting"):
        update_start(cfg, params, opt, {}, (den0, opt0))


def test_an_anchored_planner_keeps_a_fixed_share_of_the_pretrained_denoiser():
    """``cfg.anchor``: leaf by leaf, anchor * pretrained + (1 - anchor) * the EMA (or trained)
    denoiser; 0 is the denoiser itself. Refused outside [0, 1)."""
    den0 = {"a": np.zeros((3, 2), np.float32), "b": {"c": np.full(4, 2.0, np.float32)}}
    den = {"a": np.ones((3, 2), np.float32), "b": {"c": np.full(4, 6.0, np.float32)}}
    got = anchored(den0, den, 0.25)
    np.testing.assert_allclose(got["a"], 0.75)
    np.testing.assert_allclose(got["b"]["c"], 5.0)
    same = anchored(den0, den, 0.0)
    np.testing.assert_array_equal(same["b"]["c"], den["b"]["c"])
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="anchor"):
            FinetuneConfig(anchor=bad)


def test_a_pieces_speed_class_comes_from_the_command_not_the_lagging_observation():
    """The env's latency delays the observation's copy of the command by up to 2 steps, so a
    piece that starts just after a resample would be grouped by the old speed; the rollout
    records the command itself (``vx``) and the buffer groups by it."""
    from dmpc_jax.envs import obs as obs_lib

    t, b = 50, 4
    obs = np.zeros((t, b, 49), np.float32)
    obs[..., obs_lib.OBS_SLICES["command"].start] = 0.6 * obs_lib.COMMAND_SCALE[0]  # old: slow
    rec = {"obs": obs, "action": np.zeros((t, b, 12), np.float32),
           "reward": np.full((t, b), 0.2, np.float32), "done": np.zeros((t, b), bool),
           "valid": np.ones((t, b), bool), "wz": np.zeros((t, b), np.float32)}  # fmt: skip
    edges = (0.7, 0.85)
    old = ReplayBuffer(100, t, yaw_classes=3, speed_edges=edges)
    old.add_rollout(rec, 24, 1)
    assert (old.group == 1 * 3 + 0).all()  # without the record: the observation's speed
    new = ReplayBuffer(100, t, yaw_classes=3, speed_edges=edges)
    new.add_rollout({**rec, "vx": np.full((t, b), 1.0, np.float32)}, 24, 1)
    assert (new.group == 1 * 3 + 2).all()  # the command's: straight and fast


def test_the_finetuning_env_clears_yaw_rates_inside_the_deadband():
    """``--cfg.wz-deadband 0.5`` on wz ~ U(-1, 1): half of the drawn commands are exactly
    straight, the rest turn at least 0.5 rad/s; vx stays in the config's range, vy is 0 and no
    command is a standing one (the env's own command sampler, which reset and every resample
    call)."""
    import jax

    from dmpc_jax.envs.randomization import sample_command
    from dmpc_jax.finetune.rollout import make_env

    env = make_env(dataclasses.replace(PAPER, wz_deadband=0.5))
    cmd = np.asarray(
        jax.vmap(functools.partial(sample_command, env.cfg.command))(
            jax.random.split(jax.random.PRNGKey(0), 4000)
        )
    )
    straight = cmd[:, 2] == 0.0
    assert 0.46 < straight.mean() < 0.54
    assert (np.abs(cmd[~straight, 2]) >= 0.5).all()
    assert (cmd[:, 1] == 0).all() and (cmd[:, 0] >= PAPER.vx[0]).all()
    assert (cmd[:, 0] <= PAPER.vx[1]).all() and (cmd[:, 0] > 0).all()
    plain = make_env(PAPER)  # the preset's deadband, 0.1: a tenth straight
    cmd = np.asarray(
        jax.vmap(functools.partial(sample_command, plain.cfg.command))(
            jax.random.split(jax.random.PRNGKey(0), 4000)
        )
    )
    assert 0.07 < (cmd[:, 2] == 0).mean() < 0.13


def test_nine_command_groups_at_the_straight_arm_shapes():
    """The straight arm's layout (3 yaw classes x speed edges 0.7 / 0.85, deadband 0.5, vx ~
    U(0.5, 1.0)): at its first updates (about 20 k and 41 k pieces) the kept union is under the
    1500 cap, so every kept piece trains, a sixth of them straight and fast; at 100 k the cap
    draws 1500 of the union; the per-batch weights have mean 1 in each of the nine groups."""
    rng = np.random.default_rng(4)
    edges = (0.7, 0.85)
    for n, want in ((20_480, None), (40_960, None), (100_000, 1500)):
        wz = rng.uniform(-1, 1, n)
        wz = np.where(np.abs(wz) < 0.5, 0.0, wz)
        groups = command_group(wz, rng.uniform(0.5, 1.0, n), 3, edges)
        assert set(np.unique(groups).tolist()) == set(range(9))
        scores = rng.normal(0.2, 0.05, n).astype(np.float32)
        union = select_top(scores, groups, 0.015, n * 9)
        picked = select_pieces(scores, groups, 0.015, 1500, "random", np.random.default_rng(1))
        assert len(picked) == (len(union) if want is None else want)
        assert set(picked.tolist()) <= set(union.tolist())
        fast_straight = (groups[picked] == 1 * 3 + 2).mean()
        assert 0.11 < fast_straight < 0.19  # 0.5 straight x 0.3 fast
    batch = groups[rng.choice(len(groups), (PAPER.steps_per_call, PAPER.batch_size))]
    w = minibatch_weights(rng.normal(0.2, 0.05, batch.shape), batch, PAPER.temperature)
    for i in range(batch.shape[0]):
        for g in np.unique(batch[i]):
            np.testing.assert_allclose(w[i, batch[i] == g].mean(), 1.0, rtol=1e-5)


def test_an_annealed_update_runs_each_step_at_its_share_of_the_rate():
    """``lr_anneal``: over an update of n steps (two calls here), step k gets ``lr_scale`` 1 -
    k / n, handed to the jitted update with the batches; without it, no scale is handed."""
    rng = np.random.default_rng(8)
    buf = _buffer(rng, n_pieces=10)
    cfg = dataclasses.replace(PAPER, batch_size=8)
    seen = []

    def fake_update(params, opt_state, batches, key):
        seen.append(batches.get("lr_scale"))
        return params, opt_state, {}

    n = 2 * cfg.steps_per_call
    for anneal in (True, False):
        seen.clear()
        train_network(fake_update, {}, None, buf, rng, np.zeros(2, np.uint32), cfg,
                      np.arange(len(buf)), None, n, 24, anneal=anneal)  # fmt: skip
        if anneal:
            got = np.concatenate([np.asarray(s) for s in seen])
            np.testing.assert_allclose(got, 1.0 - np.arange(n) / n, rtol=1e-6)
        else:
            assert seen == [None, None]


def test_the_update_moves_the_parameters_by_its_rate_share():
    """The jitted update with ``lr_scale``: a scale of 1 is the plain step (bit for bit), 0
    leaves the parameters where they were (Adam's moments still count the step), and 0.5 moves
    them half as far as 1 (Adam's step is linear in its rate)."""
    import jax

    from dmpc_jax.diffusion import model as M
    from dmpc_jax.diffusion.config import make_optimizer
    from dmpc_jax.finetune.update import make_update

    dcfg = M.diffusion_preset("tiny")
    nets, params = M.init_networks(dcfg, jax.random.PRNGKey(0))
    opt = make_optimizer(PAPER)
    update = make_update(nets, dcfg, M.paper_scaler(), opt, "denoiser")
    rng = np.random.default_rng(9)
    s, b, h = 2, 4, dcfg.horizon
    batches = {"obs": rng.normal(size=(s, b, h, 49)).astype(np.float32),
               "action": rng.normal(size=(s, b, h, 12)).astype(np.float32) * 0.3,
               "reward": np.zeros((s, b, h), np.float32), "weight": np.ones((s, b), np.float32)}  # fmt: skip
    key = jax.random.PRNGKey(1)
    st0 = opt.init(params["denoiser"])

    def moved(scale):
        bt = batches if scale is None else {**batches, "lr_scale": np.full(s, scale, np.float32)}
        new, _, _ = update(params, st0, bt, key)
        return [np.asarray(a) - np.asarray(b0) for a, b0 in
                zip(jax.tree.leaves(new["denoiser"]), jax.tree.leaves(params["denoiser"]), strict=True)]  # fmt: skip

    plain, one, zero, half = moved(None), moved(1.0), moved(0.0), moved(0.5)
    for p, o, z in zip(plain, one, zero, strict=True):
        np.testing.assert_array_equal(p, o)
        np.testing.assert_array_equal(z, 0.0)
    # two steps: the second step's gradient is taken where the first (half as long) left the
    # parameters, so "half as far" holds to first order
    total = sum(float(np.abs(p).sum()) for p in plain)
    total_half = sum(float(np.abs(hf).sum()) for hf in half)
    assert 0.4 < total_half / total < 0.6


def test_the_uniform_control_keeps_the_kept_sets_sizes_but_not_its_scores():
    """``selection="uniform"``: as many pieces of each group as the top 1.5% holds (at the
    paper layout, 41 k pieces: under the 1500 cap, so all of them), drawn regardless of score:
    their mean score is the buffer's, where the top quantile's is far above it."""
    rng = np.random.default_rng(10)
    scores, groups = _paper_buffer_scores(rng, n=40_960)
    top = select_pieces(scores, groups, 0.015, 1500, "random", np.random.default_rng(1))
    uni = select_pieces(scores, groups, 0.015, 1500, "uniform", np.random.default_rng(1))
    for g in range(3):
        assert (groups[uni] == g).sum() == (groups[top] == g).sum()
    assert abs(scores[uni].mean() - scores.mean()) < 0.01
    assert scores[top].mean() > scores.mean() + 0.08
    assert len(set(uni.tolist()) & set(top.tolist())) < 0.1 * len(top)
    at_cap = select_pieces(*_paper_buffer_scores(rng), 0.015, 1500, "uniform", rng)
    assert len(at_cap) == 1500 and len(set(at_cap.tolist())) == 1500


def test_options_fixed_at_trace_time_run_as_the_traced_ones(env, row_rollout):
    """The finetuning run's program (``run`` without ``opts``: the config's choices fixed when it
    is traced) records what the shared traced rollout records on the same keys, at the setting
    the traced tests leave to it: no reset replanning, noise at the actuator, planned record."""
    import jax
    import jax.numpy as jnp

    from dmpc_jax.finetune.rollout import make_rollout

    settings = dict(action_noise=0.1, replan_at_reset=False, noise_at="actuator",
                    record_action="planned")  # fmt: skip
    cfg, traced = row_rollout(**settings)
    plan_fn, Task = _row_planner()
    start, run = make_rollout(
        dataclasses.replace(cfg, **settings), env, plan_fn, Task(jnp.zeros(())), None
    )
    _, fixed = run(start(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), None)
    fixed = jax.tree.map(np.asarray, fixed)
    assert jax.tree.structure(fixed) == jax.tree.structure(traced)
    for got, want in zip(jax.tree.leaves(fixed), jax.tree.leaves(traced), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.asarray(traced["valid"]).all()  # the resets' unplanned steps are in it


ROW_ROLLOUT = dict(n_envs=4, steps_per_iter=12, execute=3, action_noise=0.1)


@pytest.fixture(scope="module")
def row_rollouts(row_rollout):
    """{(record_action, noise_at): records} of ``row_rollout``'s first 12 steps with action
    noise 0.1 on the same keys, for the tests below."""
    import jax

    out = {}
    for how, where in (("executed", "action"), ("planned", "action"), ("planned", "actuator")):
        _, rec = row_rollout(action_noise=0.1, record_action=how, noise_at=where)
        out[how, where] = jax.tree.map(lambda x: x[:12], rec)
    assert row_rollout.traces() == 1
    return out


def test_the_planned_record_is_the_plan_row_and_the_executed_one_carries_the_noise(
    env, row_rollouts
):
    # the recorded action tells which plan row ran (_row_planner); the same
    # keys give the same rollout, so the two records differ by the exploration noise alone
    base = dataclasses.replace(finetune_preset("tiny"), **ROW_ROLLOUT)
    recs = {how: row_rollouts[how, "action"] for how in ("executed", "planned")}
    planned, executed = (
        np.asarray(recs["planned"]["action"]),
        np.asarray(recs["executed"]["action"]),
    )
    np.testing.assert_array_equal(recs["planned"]["obs"], recs["executed"]["obs"])  # same rollout
    valid = np.asarray(recs["planned"]["valid"])
    rows = 0.01 * (np.arange(12) % 3 + 1.0)  # the batch replans every 3 steps from t = 0
    np.testing.assert_allclose(planned[valid], np.repeat(rows, 4)[valid.ravel(), None]
                               * np.ones(12), atol=1e-6)  # fmt: skip
    noise = (executed - planned)[valid]
    assert 0.08 < noise.std() < 0.12 and abs(noise.mean()) < 0.02
    # the per-term records add up to the reward, and their logged means to the logged reward
    from dmpc_jax.finetune.rollout import rollout_metrics

    rec = recs["planned"]
    np.testing.assert_allclose(sum(rec["terms"].values()), rec["reward"], rtol=1e-5, atol=1e-6)
    m = rollout_metrics(rec, env.cfg.ctrl_dt)
    assert set(rec["terms"]) == set(env.cfg.reward.scales)
    total = sum(m[f"rollout/term/{k}"] for k in rec["terms"])
    assert total == pytest.approx(m["rollout/reward_per_step"], rel=1e-5)
    assert m["rollout/lin_vel_err"] >= 0
    with pytest.raises(ValueError, match="record_action"):
        dataclasses.replace(base, record_action="noisy")


def test_noise_at_the_actuator_keeps_the_last_action_slot_clean(row_rollouts):
    """``noise_at`` actuator: the same physics as noise on the action (the PD target gets the
    planned action plus the same noise), but the observations' last-action slot shows the
    planned actions only, so a planned record's states agree with its actions; with noise on
    the action the slot carries the noise."""
    from dmpc_jax.envs.obs import OBS_SLICES

    base = dataclasses.replace(finetune_preset("tiny"), **ROW_ROLLOUT, record_action="planned")
    recs = {where: row_rollouts["planned", where] for where in ("action", "actuator")}
    act, mot = recs["action"], recs["actuator"]
    body = slice(0, OBS_SLICES["last_action"].start)  # velocities, gravity, command, joints
    np.testing.assert_array_equal(mot["obs"][..., body], act["obs"][..., body])  # same physics
    np.testing.assert_array_equal(mot["action"], act["action"])  # the planned rows
    # the slot shows a recent action (the observation's latency delays it): the plan rows of
    # _row_planner (0.01, 0.02, 0.03) or the zero of a start, with the noise only on the action
    rows = np.array([0.0, 0.01, 0.02, 0.03])
    dist = lambda x: np.abs(x[..., None] - rows).min(-1)  # noqa: E731
    last = OBS_SLICES["last_action"]
    assert dist(mot["obs"][..., last]).max() < 1e-6
    assert np.median(dist(act["obs"][..., last])) > 0.01
    with pytest.raises(ValueError, match="noise_at"):
        dataclasses.replace(base, noise_at="motor")
    with pytest.raises(ValueError, match="record_action 'planned'"):
        dataclasses.replace(base, noise_at="actuator", record_action="executed")


def _aged_rollout(rng, t=50, b=256, e=11):
    """[T, B] records at the cpu_paper layout whose plan ages run 0 .. E-1 from a per-env offset
    (as envs served fresh join the batch's timeline); obs[..., 0] carries the age and obs[..., 1]
    the step, so a drawn window shows where it starts."""
    rec = _falling_rollout(rng, t, b, fall_at={5: 30, 6: 37})
    offset = rng.integers(0, e, b)
    rec["age"] = ((np.arange(t)[:, None] + offset[None]) % e).astype(np.int32)
    rec["obs"][..., 0] = rec["age"]
    rec["obs"][..., 1] = np.arange(t)[:, None]
    return rec


def test_replan_windows_start_at_a_plan_and_stay_inside_their_piece(tmp_path):
    """``window_starts="replan"`` at the run's shapes (256 envs x 50 steps, H = 24, E = 11, the
    paper's batches): every window the update gets starts at plan age 0 and is 24 consecutive
    steps of one piece; ``any`` draws plan ages 0..10 alike. Ages survive save and load, and a
    buffer without them refuses replan windows with a clear error."""
    rng = np.random.default_rng(11)
    buf = ReplayBuffer(100_000, 50, yaw_classes=3)
    buf.add_rollout(_aged_rollout(rng), 24, 1)
    assert len(buf) == 256
    cfg = dataclasses.replace(PAPER, window_starts="replan")

    def drawn(starts):
        seen = []

        def fake_update(params, opt_state, batches, key):
            seen.append(batches)
            return params, opt_state, {"loss": np.float32(0.0)}

        train_network(fake_update, {}, None, buf, rng, np.zeros(2, np.uint32), cfg,
                      np.arange(len(buf)), None, 2 * cfg.steps_per_call, 24,
                      starts=starts)  # fmt: skip
        return np.concatenate([b["obs"].reshape(-1, 24, 49) for b in seen])

    rep, anyw = drawn("replan"), drawn("any")
    assert len(rep) == 2 * cfg.steps_per_call * cfg.batch_size
    np.testing.assert_array_equal(rep[:, 0, 0], 0)
    np.testing.assert_array_equal(np.diff(rep[..., 1], axis=1), 1)  # one piece, in order
    assert rep[:, -1, 1].max() <= 49
    ages = np.bincount(anyw[:, 0, 0].astype(int), minlength=11) / len(anyw)
    assert ages.min() > 0.06 and ages.max() < 0.13  # about 1/11 each
    # every replan start of a piece is drawn (3 per full piece: ages 0 at 3 of the 27 starts)
    first = np.flatnonzero(buf.length == 50)[0]
    eligible = set(np.flatnonzero(buf.age[first, :27] == 0).tolist())
    got = buf.windows(np.random.default_rng(0), np.array([first]), None, 2000, 24, "replan")
    assert set(got["obs"][:, 0, 1].astype(int).tolist()) == eligible and len(eligible) >= 2
    buf.save(tmp_path / "b.npz")
    np.testing.assert_array_equal(ReplayBuffer.load(tmp_path / "b.npz").age, buf.age)
    with np.load(tmp_path / "b.npz") as f:
        old = {k: f[k] for k in f.files if k != "age"}
    np.savez(tmp_path / "old.npz", **old)
    old_buf = ReplayBuffer.load(tmp_path / "old.npz")
    assert (old_buf.age == -1).all()
    with pytest.raises(ValueError, match="plan ages recorded"):
        old_buf.windows(rng, np.arange(4), None, 8, 24, "replan")
    # stride: as many windows again, one start in 11 of each piece, the plan ages mixed
    st = buf.windows(np.random.default_rng(0), np.arange(len(buf)), None, 8000, 24, "stride11")
    assert np.bincount(st["obs"][:, 0, 0].astype(int), minlength=11).min() > 0.05 * 8000
    for p in np.unique(st["piece"])[:20]:  # each piece's starts 11 apart
        t0 = np.unique(st["obs"][st["piece"] == p, 0, 1].astype(int))
        assert (np.diff(t0) % 11 == 0).all()
    n_st, n_rp = (buf.n_windows(np.arange(len(buf)), 24, s) for s in ("stride11", "replan"))
    assert abs(n_st - n_rp) < 0.1 * n_rp
    for bad in ("stale", "age11", "age-1", "stride0"):
        with pytest.raises(ValueError, match="window_starts"):
            dataclasses.replace(PAPER, window_starts=bad)
    # the control: as many windows, every one 5 steps into its plan
    age5 = buf.windows(np.random.default_rng(0), np.arange(len(buf)), None, 4000, 24, "age5")
    np.testing.assert_array_equal(age5["obs"][:, 0, 0], 5)
    n_rep, n_age5 = (buf.n_windows(np.arange(len(buf)), 24, s) for s in ("replan", "age5"))
    assert abs(n_rep - n_age5) < 0.1 * n_rep and buf.n_windows(np.arange(len(buf)), 24) > 9 * n_rep
    # epochs count the windows the update may draw: an epoch of replan windows is ~11x fewer windows
    ep = dataclasses.replace(PAPER, update_epochs=10.0)
    keep = np.arange(len(buf))
    steps_any = update_steps(ep, buf, keep, 24)
    steps_rep = update_steps(dataclasses.replace(ep, window_starts="replan"), buf, keep, 24)
    assert steps_rep * ep.batch_size >= 10 * n_rep > (steps_rep - ep.steps_per_call) * ep.batch_size
    assert steps_any > 5 * steps_rep  # 280 against 40 (whole calls of 20 steps)
