"""Architecture datasets: the public-data registry, records, readers, NAS-Bench-201, and the file format
of your own collections (``pnag collect`` itself is :mod:`pnag.collect`)."""

from .collection import CollectConfig, load_collection, read_collection
from .join import TrainingTable, training_table
from .nb201 import NB201_DATASETS, NB201_DEVICES, NB201Table, load_nb201
from .readers import (RECORD_DATASETS, ReferencePoint, load_dataset, load_help_ofa_gpu, load_ofa_specialized,
                      read_pnag_json, write_csv, write_pnag_json)
from .records import Accuracy, Dataset, Latency, MergeReport, Record, make_dataset, merge_records
from .registry import fetch, get_dataset_info, get_file, list_datasets

__all__ = [
    "fetch", "get_dataset_info", "get_file", "list_datasets",
    "NB201_DATASETS", "NB201_DEVICES", "NB201Table", "load_nb201",
    "Accuracy", "Dataset", "Latency", "MergeReport", "Record", "make_dataset", "merge_records",
    "RECORD_DATASETS", "ReferencePoint", "load_dataset", "load_help_ofa_gpu", "load_ofa_specialized",
    "read_pnag_json", "write_csv", "write_pnag_json",
    "TrainingTable", "training_table",
    "CollectConfig", "load_collection", "read_collection",
]
