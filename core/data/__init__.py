"""Datasets as in-memory uint8 tensors, imbalance profiles, and loaders."""

from core.data.imageset import ImageSet, LoadedDataset
from core.data.loading import DATASETS, DataConfig, load_dataset, prepare

__all__ = ["ImageSet", "LoadedDataset", "DATASETS", "DataConfig", "load_dataset", "prepare"]
