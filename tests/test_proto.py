"""The committed generated code must be what proto/generate.py produces now."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load_generator():
    spec = importlib.util.spec_from_file_location("proto_generate", REPO / "proto" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_current(tmp_path):
    pytest.importorskip("grpc_tools")
    generator = _load_generator()
    generator.generate(tmp_path)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2*"))
    assert generated, "the generator produced nothing"
    committed = sorted(p.relative_to(REPO) for p in (REPO / "strom" / "rpc").glob("*_pb2*"))
    assert generated == committed, "generated files differ from committed ones"
    stale = [
        str(path)
        for path in generated
        if (tmp_path / path).read_bytes() != (REPO / path).read_bytes()
    ]
    assert not stale, f"stale generated code, run `python proto/generate.py`: {stale}"


def test_every_proto_has_generated_code():
    generator = _load_generator()
    for source in generator.proto_sources():
        module = source.relative_to(REPO / "proto").with_suffix("")
        assert (REPO / f"{module}_pb2.py").is_file(), f"{module}_pb2.py is missing"
        assert (REPO / f"{module}_pb2_grpc.py").is_file(), f"{module}_pb2_grpc.py is missing"


def test_ruff_is_clean():
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
