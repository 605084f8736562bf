"""The gRPC contract's Python code is generated from the .proto (never committed) and kept fresh."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from coamd.api import codegen as proto

ROOT = Path(__file__).resolve().parents[1]


def test_generated_code_matches_proto_and_is_ignored():
    from coamd.api import pb, pb_grpc

    methods = [m.name for m in pb.DESCRIPTOR.services_by_name["MotionService"].methods]
    assert methods == ["Generate", "Recognize", "Retrieve", "GetSkeleton", "GetCapabilities", "Session"]
    assert pb.Guidance.Value("GUIDANCE_OFF") == 2
    assert hasattr(pb_grpc, "MotionServiceStub")
    tracked = subprocess.run(["git", "ls-files", "coamd/_proto"], cwd=ROOT, capture_output=True, text=True)
    assert tracked.stdout.strip() == ""
    ignored = subprocess.run(["git", "check-ignore", "coamd/_proto/coamd/v1/motion_pb2.py"], cwd=ROOT)
    assert ignored.returncode == 0


def test_regenerates_when_proto_changes(tmp_path):
    src = tmp_path / "motion.proto"
    src.write_text(proto.proto_file().read_text())
    target = tmp_path / "gen"
    assert proto._ensure_at(target, "stamp-a", src)
    first = (target / "coamd" / "v1" / "motion_pb2.py").stat().st_mtime_ns
    assert proto._ensure_at(target, "stamp-a", src)      # up to date: untouched
    assert (target / "coamd" / "v1" / "motion_pb2.py").stat().st_mtime_ns == first
    src.write_text(src.read_text().replace("message Skeleton {", "message Extra { int32 x = 1; }\n\nmessage Skeleton {"))
    assert proto._ensure_at(target, "stamp-b", src)
    text = (target / "coamd" / "v1" / "motion_pb2.py").read_text()
    assert "_EXTRA" in text and (target / "STAMP").read_text().strip() == "stamp-b"
    grpc_text = (target / "coamd" / "v1" / "motion_pb2_grpc.py").read_text()
    assert "from coamd._proto.coamd.v1 import motion_pb2" in grpc_text


def test_fresh_process_outside_repo_imports_contract(tmp_path):
    # A fresh interpreter started elsewhere (another cwd, bare environment) finds and loads the code.
    code = "from coamd.api import pb; print(pb.GenerateRequest(text='x').text)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"XDG_CACHE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "x"
