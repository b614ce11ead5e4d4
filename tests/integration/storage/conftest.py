"""The S3 server fixture for storage tests."""

from tests.support.s3_server import s3_server  # noqa: F401 (fixture)
