"""Dataset loading, validation errors and DP-style windows."""

import h5py
import numpy as np
import pytest

from cdp_core.data import DatasetError, Episode, WindowDataset, load_episodes, write_dataset_meta, write_episode


def _write(root, episodes, obs_dims=None):
    write_dataset_meta(root, obs_dims or {"pos": 2}, 1)
    for i, ep in enumerate(episodes):
        write_episode(root, i, ep)


def test_windows_pad_edges_like_diffusion_policy(tmp_path):
    n = 6
    _write(
        tmp_path,
        [
            Episode(
                obs={"pos": np.arange(2 * n, dtype=np.float32).reshape(n, 2)},
                action=np.arange(n, dtype=np.float32)[:, None],
            )
        ],
    )
    w = WindowDataset(load_episodes(tmp_path), ["pos"], n_obs_steps=2, horizon=4, n_action_steps=2)
    # starts from -1 to n - horizon + 1 = 3 -> 5 windows
    assert len(w) == 5
    assert w.action[0, :, 0].tolist() == [0, 0, 1, 2]  # first step repeated before the episode
    assert w.action[-1, :, 0].tolist() == [3, 4, 5, 5]  # last step repeated after it
    assert w.obs[0, :, 0].tolist() == [0, 0]


def test_nan_is_reported_with_episode_and_step(tmp_path):
    bad = np.zeros((5, 1), dtype=np.float32)
    bad[3] = np.nan
    _write(
        tmp_path,
        [
            Episode(obs={"pos": np.zeros((5, 2))}, action=np.zeros((5, 1))),
            Episode(obs={"pos": np.zeros((5, 2))}, action=bad),
        ],
    )
    with pytest.raises(DatasetError, match=r"episode_000001.*action holds NaN.*step 3"):
        load_episodes(tmp_path)


def test_mismatched_shapes_are_reported(tmp_path):
    _write(
        tmp_path,
        [
            Episode(obs={"pos": np.zeros((5, 2))}, action=np.zeros((5, 1))),
            Episode(obs={"pos": np.zeros((4, 2))}, action=np.zeros((5, 1))),
        ],
    )
    with pytest.raises(DatasetError, match=r"'pos' has 4 steps but 'action' has 5"):
        load_episodes(tmp_path)


def test_corrupt_episode_file_is_named(tmp_path):
    _write(tmp_path, [Episode(obs={"pos": np.zeros((5, 2))}, action=np.zeros((5, 1)))])
    (tmp_path / "episodes" / "episode_000000.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="episode_000000.npz: unreadable"):
        load_episodes(tmp_path)


def test_robomimic_and_d4rl_readers(tmp_path):
    rm = tmp_path / "rm.hdf5"
    with h5py.File(rm, "w") as f:
        for i, n in enumerate([7, 5]):
            g = f.create_group(f"data/demo_{i}")
            g["obs/eef_pos"] = np.random.rand(n, 3)
            g["obs/gripper"] = np.random.rand(n, 1)
            g["actions"] = np.random.rand(n, 7)
    ds = load_episodes(rm, "robomimic")
    assert [len(e) for e in ds.episodes] == [7, 5] and ds.obs_dims == {"eef_pos": 3, "gripper": 1}
    assert ds.action_dim == 7

    d4 = tmp_path / "d4.hdf5"
    with h5py.File(d4, "w") as f:
        f["observations"] = np.random.rand(10, 4)
        f["actions"] = np.random.rand(10, 2)
        f["terminals"] = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
        f["timeouts"] = np.array([0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
    ds = load_episodes(d4, "d4rl")
    assert [len(e) for e in ds.episodes] == [3, 4, 3]

    with h5py.File(tmp_path / "bad.hdf5", "w") as f:
        f["observations"] = np.random.rand(10, 4)
        f["actions"] = np.random.rand(9, 2)
    with pytest.raises(DatasetError, match="10 rows but 'actions' has 9"):
        load_episodes(tmp_path / "bad.hdf5", "d4rl")
