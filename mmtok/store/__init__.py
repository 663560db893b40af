"""Zarr v3 stores: layout, the one-writer lock, shard writing, reading, inspection."""

from .inspect import ValidationReport, store_info, validate_store
from .writer import ShardWriter, StoreSpec, read_attrs, read_markers

__all__ = ["ShardWriter", "StoreSpec", "ValidationReport", "read_attrs", "read_markers",
           "store_info", "validate_store"]
