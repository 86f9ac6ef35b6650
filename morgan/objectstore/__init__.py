"""Publishing a mirror generation to S3-compatible object storage (``morgan publish``).

The input is a mirror folder's current generation tree (``index`` → relative links into
``store/objects`` plus rendered pages), read by :mod:`morgan.objectstore.tree`; the bucket is
reached through :mod:`morgan.objectstore.bucket` (boto3, the optional ``[s3]`` extra);
:mod:`morgan.objectstore.record` is the small publish record kept in the bucket;
:mod:`morgan.objectstore.sync` plans and runs a publish, :mod:`morgan.objectstore.prune`
removes what no kept generation needs. docs/object-storage.md describes the layout.
"""
