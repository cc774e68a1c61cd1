"""Demonstration datasets: the project's episode format, HDF5 readers, and DP-style windows."""

from .episodes import Episode, EpisodeDataset, DatasetError, load_episodes, write_episode, write_dataset_meta
from .windows import WindowDataset

__all__ = [
    "DatasetError",
    "Episode",
    "EpisodeDataset",
    "WindowDataset",
    "load_episodes",
    "write_dataset_meta",
    "write_episode",
]
