#!/usr/bin/env bash
# Regenerate the Python code of serving/protos/*.proto into serving/protos/generated/.
# grpcio-tools 1.48.2 emits code for protobuf 3.20, the version TF Serving's APIs need.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-.venv/bin/python}"
# grpc_tools.protoc's wrapper needs pkg_resources (setuptools), absent from the venv; the
# compiler itself does not, and this proto imports no well-known types.
"$PYTHON" -c 'import sys; from grpc_tools import _protoc_compiler as c
sys.exit(c.run_main([a.encode() for a in ["protoc"] + sys.argv[1:]]))' \
  -I . --python_out=. --grpc_python_out=. serving/protos/recommendations.proto
mkdir -p serving/protos/generated
mv serving/protos/recommendations_pb2.py serving/protos/recommendations_pb2_grpc.py \
  serving/protos/generated/
# protoc writes absolute imports of the proto path; point them at the generated package.
sed -i 's/^from serving\.protos import recommendations_pb2/from serving.protos.generated import recommendations_pb2/' \
  serving/protos/generated/recommendations_pb2_grpc.py
touch serving/protos/__init__.py serving/protos/generated/__init__.py
echo "generated serving/protos/generated/recommendations_pb2{,_grpc}.py"
