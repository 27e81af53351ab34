"""Regenerate the committed protobuf and gRPC code from the .proto sources.

Run from anywhere: ``python proto/generate.py``. The .proto files live under proto/ at the path
of the package they generate into, so the generated imports resolve without rewriting. The
output depends on the pinned grpcio-tools version (see pyproject.toml); tests/test_proto.py fails
when the committed files differ from what this script produces.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent


def proto_sources() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    """Write the _pb2, _pb2_grpc and .pyi files for every .proto into ``out_dir``."""
    import grpc_tools
    from grpc_tools import protoc  # the pinned grpcio-tools, a test dependency

    include = Path(grpc_tools.__file__).parent / "_proto"
    for source in proto_sources():
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(source.relative_to(PROTO_ROOT)),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {source}")


if __name__ == "__main__":
    import os

    os.chdir(PROTO_ROOT)
    generate(REPO_ROOT)
    print(f"generated code for {len(proto_sources())} proto file(s)", file=sys.stderr)
