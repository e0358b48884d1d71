"""Sets up a moto S3 server for cli/tests/object_store.rs: an IAM user whose key may do
anything (the server enforces credentials after its first few requests), a bucket, and the
given files uploaded under the given keys. Prints the user's key as JSON.

usage: moto_setup.py ENDPOINT BUCKET KEY=FILE...
"""

import json
import sys

import boto3

endpoint, bucket, *uploads = sys.argv[1:]
anon = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")

# The first requests are not authenticated (INITIAL_NO_AUTH_ACTION_COUNT): make the user.
iam = boto3.client("iam", **anon)
iam.create_user(UserName="gespann")
key = iam.create_access_key(UserName="gespann")["AccessKey"]
iam.put_user_policy(
    UserName="gespann",
    PolicyName="all",
    PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    ),
)

s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=key["AccessKeyId"],
    aws_secret_access_key=key["SecretAccessKey"],
)
s3.create_bucket(Bucket=bucket)
for u in uploads:
    name, path = u.split("=", 1)
    with open(path, "rb") as f:
        s3.put_object(Bucket=bucket, Key=name, Body=f.read())
print(json.dumps({"key_id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))
