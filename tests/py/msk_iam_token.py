"""Checks an MSK IAM token (SASL/OAUTHBEARER for Amazon MSK) the way the broker would: it
must be a base64url (unpadded) `https://kafka.<region>.amazonaws.com/` URL presigned with
SigV4 for action `kafka-cluster:Connect`, service `kafka-cluster`, 900 seconds; and its
signature must equal the one botocore computes for the same credentials at the token's own
X-Amz-Date. An oracle independent of refold and of the Rust signer crate.

Usage: msk_iam_token.py --region R   (token on stdin; credentials from AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). Prints "ok"; exit 1 with the reason otherwise.
"""
import argparse
import base64
import datetime
import os
import sys
from urllib.parse import parse_qs, urlsplit

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def fail(why: str) -> int:
    print(why, file=sys.stderr)
    return 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--region", required=True)
    a = ap.parse_args()
    token = sys.stdin.read().strip()
    if "=" in token:
        return fail("the token is padded (MSK wants unpadded base64url)")
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    parts = urlsplit(url)
    if (parts.scheme, parts.netloc, parts.path) != ("https", f"kafka.{a.region}.amazonaws.com", "/"):
        return fail(f"not the region's kafka endpoint: {parts.scheme}://{parts.netloc}{parts.path}")
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    want = {
        "Action": "kafka-cluster:Connect",
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Expires": "900",
    }
    for k, v in want.items():
        if q.get(k) != v:
            return fail(f"{k} = {q.get(k)!r}, want {v!r}")
    key = os.environ["AWS_ACCESS_KEY_ID"]
    scope = q["X-Amz-Credential"].split("/")
    if scope[0] != key or scope[2:] != [a.region, "kafka-cluster", "aws4_request"]:
        return fail(f"credential scope {q['X-Amz-Credential']!r}")
    when = datetime.datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
    botocore.auth.get_current_datetime = lambda *_, **__: when
    creds = Credentials(key, os.environ["AWS_SECRET_ACCESS_KEY"], os.environ.get("AWS_SESSION_TOKEN"))
    req = AWSRequest(method="GET", url=f"https://kafka.{a.region}.amazonaws.com/?Action=kafka-cluster%3AConnect")
    botocore.auth.SigV4QueryAuth(creds, "kafka-cluster", a.region, expires=900).add_auth(req)
    theirs = {k: v[0] for k, v in parse_qs(urlsplit(req.url).query).items()}
    if theirs["X-Amz-Signature"] != q["X-Amz-Signature"]:
        return fail(f"signature differs from botocore's: {q['X-Amz-Signature']} vs {theirs['X-Amz-Signature']}")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
