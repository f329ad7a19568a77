import boto3, os, sys
ep, root = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=ep, aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1")
s3.create_bucket(Bucket="bucket")
n = 0
for d, _, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f); s3.upload_file(p, "bucket", "prefix/" + os.path.relpath(p, root)); n += 1
print("uploaded", n)
