"""Where export files live: the `BlobStore` port (see `port`) and its adapters."""

from ehiconnect.storage.port import (
    BlobNotFound,
    BlobStore,
    BlobWriter,
    InvalidKey,
    InvalidRange,
    ObjectInfo,
    StorageError,
    StoredObject,
    validate_key,
)

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "BlobWriter",
    "InvalidKey",
    "InvalidRange",
    "ObjectInfo",
    "StorageError",
    "StoredObject",
    "validate_key",
]
