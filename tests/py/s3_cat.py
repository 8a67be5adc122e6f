"""Prints the bytes of every `.jsonl` object directly under s3://bucket/prefix/ on a local S3
(moto), in key order, concatenated: what a function wrote (dead letters), read by boto3
rather than refold. Sub-folders are left out (a replay's dead letters go to
`<prefix>/replay-<id>/`).

Usage:
  s3_cat.py --endpoint http://127.0.0.1:PORT s3://bucket/prefix

Credentials and region come from the AWS_* variables (dummies for moto).
"""
import argparse
import os
import sys
from urllib.parse import urlparse

import boto3


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("url")
    a = ap.parse_args()
    u = urlparse(a.url)
    if u.scheme != "s3" or not u.netloc:
        print(f"s3_cat: {a.url} is not s3://bucket/prefix", file=sys.stderr)
        return 2
    s3 = boto3.client(
        "s3",
        endpoint_url=a.endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )
    path = u.path.strip("/")
    prefix = path + "/" if path else ""
    keys = []
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=u.netloc, Prefix=prefix, Delimiter="/")
    for page in pages:
        keys.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".jsonl"))
    out = sys.stdout.buffer
    for key in sorted(keys):
        out.write(s3.get_object(Bucket=u.netloc, Key=key)["Body"].read())
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
