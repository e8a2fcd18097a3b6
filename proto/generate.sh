#!/usr/bin/env bash
# Generate Python gRPC stubs from proto/ into the git-ignored package loyalnest_grpc/.
# protoc names imports after the .proto paths (`from points.v1 import ...`); they are rewritten
# to live under loyalnest_grpc so the generated code does not claim top-level package names.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
OUT=loyalnest_grpc
rm -rf "$OUT"
mkdir -p "$OUT"
mapfile -t protos < <(cd proto && find . -name '*.proto' -printf '%P\n' | sort)
"$PY" -m grpc_tools.protoc -I proto --python_out="$OUT" --pyi_out="$OUT" \
  --grpc_python_out="$OUT" "${protos[@]}"
packages=$(cd proto && find . -name '*.proto' -printf '%h\n' | sed 's#^\./##' | cut -d/ -f1 | sort -u)
for pkg in $packages; do
  find "$OUT" -name '*.py*' -exec sed -i -E "s/^from ${pkg}(\.| )/from ${OUT}.${pkg}\1/" {} +
done
find "$OUT" -type d -exec touch {}/__init__.py \;
echo "generated $(find "$OUT" -name '*_pb2*.py' | wc -l) modules in $OUT/ from ${#protos[@]} proto file(s)"
