"""Create S3 buckets on an S3-compatible endpoint if they do not exist (idempotent).

Used by the ``bucket-init`` service of infra/compose.yaml against MinIO:

    python /app/infra/scripts/create_buckets.py --endpoint-url http://minio:9000 videolstm mlflow

Credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the
compose env file); nothing secret is passed on the command line. The endpoint is retried for
``--wait`` seconds so the script can start while the store is still coming up.
"""

from __future__ import annotations

import argparse
import sys
import time

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError


def create_buckets(client, buckets: list[str]) -> list[str]:
    """Create each missing bucket; return the names created (existing ones are left alone)."""
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    created = []
    for bucket in buckets:
        if bucket in existing:
            continue
        try:
            client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
            continue
        created.append(bucket)
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("buckets", nargs="+")
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to keep retrying an unreachable endpoint")
    args = parser.parse_args(argv)
    client = boto3.client("s3", endpoint_url=args.endpoint_url, region_name=args.region)
    deadline = time.monotonic() + args.wait
    while True:
        try:
            created = create_buckets(client, args.buckets)
            break
        except EndpointConnectionError:
            if time.monotonic() > deadline:
                print(f"create_buckets: {args.endpoint_url} unreachable after {args.wait:.0f} s", file=sys.stderr)
                return 1
            time.sleep(2)
    print(f"create_buckets: created {created or 'none'}; present: {', '.join(args.buckets)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
