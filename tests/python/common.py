"""Shared setup for Sluice's Python interop programs: generates the grpcio stubs for the
project's test protos (tests/proto) into a private folder and imports them."""

import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "proto")


def load_stubs():
    """Returns (interop_pb2, interop_pb2_grpc), generating them on first use."""
    from grpc_tools import protoc  # imported here so a missing package gives a clear error

    out = os.path.join(tempfile.gettempdir(), "sluice-interop-stubs-%d" % os.getpid())
    os.makedirs(out, exist_ok=True)
    proto = os.path.join(PROTO_ROOT, "sluice", "testing", "interop.proto")
    code = protoc.main(
        [
            "grpc_tools.protoc",
            "-I" + PROTO_ROOT,
            "--python_out=" + out,
            "--grpc_python_out=" + out,
            proto,
        ]
    )
    if code != 0:
        raise SystemExit("protoc failed on %s" % proto)
    sys.path.insert(0, out)
    from sluice.testing import interop_pb2, interop_pb2_grpc

    return interop_pb2, interop_pb2_grpc
