"""The trajectory dataset: window alignment, episode boundaries, schema and truncation errors,
and a tiny collection from a (random-init) demonstrator through the real env."""

import json

import jax
import numpy as np
import pytest
from helpers import synthetic_dataset

from dmpc_jax.data.dataset import (
    FIELDS,
    SCHEMA_VERSION,
    DatasetError,
    WindowSampler,
    concatenate,
    fallen_rows,
    load_dataset,
    source_rows,
    window_starts,
)


def test_window_starts_never_cross_an_episode_end():
    done = np.zeros((2, 10), bool)
    done[0, 3] = True  # env 0: episodes are rows 0-3 and 4-9
    starts = window_starts(done, horizon=3)
    env0 = sorted(t for e, t in starts if e == 0)
    # windows [0,1,2], [1,2,3] (may end on the done row), then [4..6] .. [7..9]; none spans 3->4
    assert env0 == [0, 1, 4, 5, 6, 7]
    env1 = sorted(t for e, t in starts if e == 1)
    assert env1 == list(range(8))
    assert len(window_starts(done, horizon=11)) == 0


def test_windows_are_aligned_and_within_episodes(tmp_path):
    ds = load_dataset(synthetic_dataset(tmp_path / "d"))
    sampler = WindowSampler(ds, horizon=5)
    batch = sampler.sample(np.random.default_rng(0), 256)
    obs_t = batch["obs"][..., 0]  # [B, H] = env*1000 + t
    np.testing.assert_array_equal(batch["action"][..., 0], obs_t + 0.5)  # a_t taken at o_t
    np.testing.assert_array_equal(np.diff(obs_t, axis=1), 1.0)  # consecutive steps, one env
    env, t0 = obs_t[:, 0] // 1000, obs_t[:, 0] % 1000
    # env 0 ends an episode at row 7: no window may contain rows 7 and 8 together
    crosses = (env == 0) & (t0 <= 7) & (t0 + 4 >= 8)
    assert not crosses.any()
    assert ((env == 0) & (t0 == 3)).any() or len(sampler) > 0
    np.testing.assert_array_equal(batch["start"][:, 0], env)


def test_windows_of_episodes_that_fall_are_dropped_at_the_recovery_data_shapes(tmp_path):
    # the recovery data's shapes: 2 s episodes (100 steps) from recorded starts, the planner's
    # horizon 24; some episodes end in a fall before their 100 steps, the last one is cut off
    e_n, t_n, h = 4, 430, 24
    path = synthetic_dataset(tmp_path / "d", E=e_n, T=t_n, done_at=())
    done, term = np.zeros((e_n, t_n), bool), np.zeros((e_n, t_n), bool)
    ends = {0: [99, 199, 299, 399], 1: [99, 149, 249, 349], 2: [40, 140, 240, 340], 3: [99, 429]}
    falls = {(1, 149), (2, 40), (2, 340), (3, 99), (3, 429)}
    for e, ts in ends.items():
        done[e, ts] = True
    for e, t in falls:
        term[e, t] = True
    np.save(path / "done.npy", done)
    np.save(path / "terminated.npy", term)
    ds = load_dataset(path)

    fell = fallen_rows(done, term)
    expect = np.zeros_like(fell)
    expect[1, 100:150] = expect[2, :41] = expect[2, 241:341] = expect[3, :] = True
    np.testing.assert_array_equal(fell, expect)  # cut-off last episodes did not fall

    keep, drop = WindowSampler(ds, h), WindowSampler(ds, h, drop_falls=True)
    kept = {tuple(x) for x in drop.starts}
    assert kept == {tuple(x) for x in keep.starts if not expect[x[0], x[1]]}
    assert len(kept) < len(keep)
    batch = drop.sample(np.random.default_rng(0), 4096)
    obs_t = batch["obs"][..., 0].astype(int)  # env * 1000 + t
    assert not expect[obs_t // 1000, obs_t % 1000].any()  # no row of a falling episode
    # an env split and the drop compose; all episodes falling is a clear error
    assert {tuple(x) for x in WindowSampler(ds, h, envs=[2], drop_falls=True).starts} == {
        x for x in kept if x[0] == 2
    }
    with pytest.raises(DatasetError, match="outside episodes that fall"):
        WindowSampler(ds, h, envs=[3], drop_falls=True)


def test_concatenated_datasets_hold_every_source_env_and_the_union_stats(tmp_path):
    a = load_dataset(synthetic_dataset(tmp_path / "a", E=3, T=20))
    b = load_dataset(synthetic_dataset(tmp_path / "b", E=2, T=20, done_at=((1, 4),)))
    c = concatenate(tmp_path / "c", [a.path, b.path], chunk=2)  # chunks that cut a source
    assert c.n_envs == 5 and c.n_steps == 20
    for k in FIELDS:
        np.testing.assert_array_equal(c[k][:3], a[k])
        np.testing.assert_array_equal(c[k][3:], b[k])
    both = np.concatenate([a["obs"], b["obs"]])
    np.testing.assert_allclose(c.meta["stats"]["obs"]["mean"], both.mean((0, 1)), rtol=1e-5)
    assert [s["n_envs"] for s in c.meta["sources"]] == [3, 2]
    assert c.meta["transitions"] == 100 and c.meta["episodes_ended"] == 2  # a's and b's done
    # windows never join two sources' envs: the union's windows are each source's
    assert len(WindowSampler(c, horizon=5)) == len(WindowSampler(a, 5)) + len(WindowSampler(b, 5))
    with pytest.raises(DatasetError, match="exists"):
        concatenate(tmp_path / "c", [a.path, b.path])
    odd = synthetic_dataset(tmp_path / "o", E=2, T=15)
    with pytest.raises(DatasetError, match="not a multiple"):
        concatenate(tmp_path / "d", [a.path, odd])
    assert not (tmp_path / "d").exists()  # refused before anything is written


def test_a_longer_source_is_cut_into_envs_of_the_shortest_length(tmp_path):
    # the pretraining data (8000 steps per env) beside recoveries (4000): here 40 beside 10
    long = load_dataset(synthetic_dataset(tmp_path / "l", E=3, T=40, done_at=((1, 25),)))
    short = load_dataset(synthetic_dataset(tmp_path / "s", E=2, T=10))
    c = concatenate(tmp_path / "c", [short.path, long.path], chunk=2)  # chunks that cut a source
    assert c.n_envs == 2 + 3 * 4 and c.n_steps == 10
    rows = source_rows(c, long.path)  # what readers of the concatenation use
    assert rows.shape == (3, 4) and source_rows(long, long.path) is None
    np.testing.assert_array_equal(source_rows(c, short.path), [[0], [1]])
    for k in FIELDS:
        np.testing.assert_array_equal(c[k][:2], short[k])
        for e in range(3):  # long env e's piece j is env 2 + 4 e + j
            for j in range(4):
                np.testing.assert_array_equal(c[k][2 + 4 * e + j], long[k][e, 10 * j : 10 * j + 10])
                assert rows[e, j] == 2 + 4 * e + j
    assert c.meta["transitions"] == 2 * 10 + 3 * 40
    assert c.meta["episodes_ended"] == 2  # short's (0, 7) and long's (1, 25)
    assert [(s["n_envs"], s["cut"]) for s in c.meta["sources"]] == [(2, 1), (12, 4)]
    # a window never crosses a cut: the long source loses the H - 1 starts before each of its
    # envs' three cuts (env 1's episode end at row 25 removes the same starts either way)
    h = 5
    assert len(WindowSampler(long, h)) == 36 + 32 + 36
    assert len(WindowSampler(c, h)) == len(WindowSampler(short, h)) + 104 - 3 * 3 * (h - 1)


def test_schema_version_mismatch_is_a_clear_error(tmp_path):
    path = synthetic_dataset(tmp_path / "d")
    meta = json.loads((path / "meta.json").read_text())
    meta["schema_version"] = SCHEMA_VERSION + 1
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="schema_version 2"):
        load_dataset(path)


def test_truncated_file_is_a_clear_error_and_other_files_untouched(tmp_path):
    path = synthetic_dataset(tmp_path / "d")
    before = {f: (path / f"{f}.npy").read_bytes() for f in FIELDS if f != "action"}
    data = (path / "action.npy").read_bytes()
    (path / "action.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"action\.npy is .* truncated"):
        load_dataset(path)
    for f, b in before.items():
        assert (path / f"{f}.npy").read_bytes() == b
    with pytest.raises(DatasetError, match="no meta.json"):
        load_dataset(tmp_path / "nothing")


def test_stats_saved(tmp_path):
    ds = load_dataset(synthetic_dataset(tmp_path / "d"))
    stats = ds.meta["stats"]
    assert len(stats["obs"]["mean"]) == 49 and len(stats["action"]["std"]) == 12
    np.testing.assert_allclose(
        stats["obs"]["mean"][0], np.asarray(ds["obs"][..., 0]).mean(), rtol=1e-6
    )


@pytest.mark.slow
def test_tiny_collection_through_the_env(tmp_path):
    import dataclasses

    from dmpc_jax.data.collect import collect, dataset_preset
    from dmpc_jax.envs.go2_joystick import Go2Joystick
    from dmpc_jax.rl.ppo import demonstrator_preset, make_trainer

    demo_cfg = demonstrator_preset("tiny")
    init, _, _, make_policy = make_trainer(Go2Joystick(demo_cfg.env), demo_cfg.ppo)
    ts = init(jax.random.PRNGKey(0))
    params = (ts.normalizer_params, ts.params.policy, ts.params.value)
    cfg = dataclasses.replace(dataset_preset("tiny"), out=str(tmp_path / "ds"), action_noise=0.1)
    meta = collect(cfg, policy_bundle=(make_policy, params, demo_cfg), progress=False)
    ds = load_dataset(tmp_path / "ds")
    assert ds["obs"].shape == (4, 60, 49) and meta["transitions"] == 240
    # 1 s episodes (50 steps) in the tiny preset: every env ends at least one episode
    assert np.asarray(ds["done"]).sum(axis=1).min() >= 1
    # vy = 0 in every stored command; commands scaled into obs row by row
    np.testing.assert_array_equal(np.asarray(ds["command"])[..., 1], 0.0)
    np.testing.assert_allclose(
        np.asarray(ds["obs"])[..., 9], 2.0 * np.asarray(ds["command"])[..., 0], rtol=1e-5, atol=1e-6
    )
    # the previous action in the (latency-free) privileged state at t+1 is a_t inside an episode:
    # the pairing is not off by one
    done = np.asarray(ds["done"])
    same = ~done[:, :-1]
    np.testing.assert_allclose(
        np.asarray(ds["privileged"])[:, 1:, 36:48][same],
        np.asarray(ds["action"])[:, :-1][same],
        atol=1e-6,
    )
    assert np.isfinite(np.asarray(ds["reward"])).all()
    with pytest.raises(FileExistsError, match="--overwrite"):
        collect(cfg, policy_bundle=(make_policy, params, demo_cfg), progress=False)
