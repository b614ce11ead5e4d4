"""The export file store chosen by settings."""

from __future__ import annotations

from ehiconnect.settings import Settings
from ehiconnect.storage.local import LocalBlobStore
from ehiconnect.storage.port import BlobStore


def build_blob_store(settings: Settings) -> BlobStore:
    exports = settings.exports
    if exports.storage == "s3":
        from ehiconnect.storage.s3 import S3BlobStore

        if not exports.s3_bucket:
            raise ValueError("exports.storage is s3 but exports.s3_bucket is not set")
        return S3BlobStore.connect(
            bucket=exports.s3_bucket,
            endpoint_url=exports.s3_endpoint_url,
            public_endpoint_url=exports.s3_public_endpoint_url,
            region=exports.s3_region or "us-east-1",
            access_key_id=exports.s3_access_key_id,
            secret_access_key=(
                exports.s3_secret_access_key.get_secret_value()
                if exports.s3_secret_access_key
                else None
            ),
            prefix=exports.s3_prefix,
        )
    return LocalBlobStore(exports.local_dir or settings.data_dir / "exports")
