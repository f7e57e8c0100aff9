#!/usr/bin/env bash
# Puts the jars that give Spark Hadoop's S3 file system (s3a://) in
# $TWINLOOP_HOME/spark-s3/, default ~/.cache/twinloop/spark-s3/: hadoop-aws and the AWS SDK it
# was built against. Maven Central, where they are published, is out of this machine's reach;
# the `sagemaker_pyspark` source package on PyPI carries both (hadoop-aws 3.3.1 with
# aws-java-sdk-bundle 1.11.901), pinned here by sha256. pip only downloads it.
# Idempotent: does nothing when the jars are there. Prints them comma-separated, as Spark's
# `spark.jars` takes them, on the last line.
set -euo pipefail

home="${TWINLOOP_HOME:-$HOME/.cache/twinloop}"
dest="$home/spark-s3"
jars=(hadoop-aws-3.3.1.jar aws-java-sdk-bundle-1.11.901.jar)
declare -A sha256=(
  [hadoop-aws-3.3.1.jar]=6be50ad8a8b445d2802381b085b2a3ede5c29d353450a6a21f16b2fefa962b6e
  [aws-java-sdk-bundle-1.11.901.jar]=b87175b32a16544cc1b37cf40390eb375833e62bed67f8ce6cde4b7ad6429ead
)

missing=0
for jar in "${jars[@]}"; do [[ -f "$dest/$jar" ]] || missing=1; done
if [[ $missing == 1 ]]; then
  mkdir -p "$dest"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  # A throwaway venv gives a pip even where the system Python has none.
  python3 -m venv "$tmp/venv"
  "$tmp/venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
    -d "$tmp" "sagemaker_pyspark==1.4.5" >&2
  for jar in "${jars[@]}"; do
    tar -xzf "$tmp/sagemaker_pyspark-1.4.5.tar.gz" -C "$tmp" \
      "sagemaker_pyspark-1.4.5/deps/jars/$jar"
    echo "${sha256[$jar]}  $tmp/sagemaker_pyspark-1.4.5/deps/jars/$jar" | sha256sum --check --quiet
    mv "$tmp/sagemaker_pyspark-1.4.5/deps/jars/$jar" "$dest/$jar"
  done
  echo "fetch-spark-s3-jars: $dest" >&2
fi
printf '%s\n' "${jars[@]/#/$dest/}" | paste -sd, -
