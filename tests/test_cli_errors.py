"""The command line reports expected errors as one ``error: ...`` line, without a traceback,
before any model is loaded: damaged motion files, unwritable outputs, bad server arguments,
an unreachable server."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from coamd import cli
from coamd.io.motion import MotionFileError, load_motion, save_motion

ROOT = Path(__file__).resolve().parents[1]
COAMD = str(Path(sys.executable).with_name("coamd"))
PROCESSED = Path(os.environ.get("COAMD_DATASET", ROOT / "data" / "processed"))
if not PROCESSED.is_absolute():
    PROCESSED = (ROOT / PROCESSED).resolve()
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _error_line(err: str) -> str:
    """The one ``error:`` line of stderr (asserts there is exactly one and no traceback)."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1, err
    return lines[0]


def _run_main(argv: list[str], capsys) -> tuple[int, str]:
    """``coamd.cli.main(argv)`` in this process: (exit status, the error line)."""
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # argparse
        rc = exc.code
    return rc, _error_line(capsys.readouterr().err)


@pytest.fixture
def no_models(monkeypatch):
    """Fail the test if a command gets as far as loading models or starting the server."""
    import coamd.server.app as app

    def forbidden(*a, **k):
        raise AssertionError("models were loaded before the arguments were checked")

    monkeypatch.setattr(cli, "_engine", forbidden)
    monkeypatch.setattr(app, "serve", forbidden)


@pytest.fixture(scope="module")
def real_clip(tmp_path_factory) -> Path:
    """A held-out clip of the processed dataset written as a motion file."""
    if not (PROCESSED / "motions.npz").exists():
        pytest.skip(f"needs the processed dataset at {PROCESSED} (`make data` or COAMD_DATASET) "
                    "for a real clip to damage")
    from coamd.data.dataset import MotionDataset

    clip = MotionDataset(PROCESSED).split("test")[0]
    path = tmp_path_factory.mktemp("clip") / "real.npz"
    save_motion(path, clip.joints, text=clip.captions[0]["text"])
    return path


@pytest.fixture
def small_motion(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    return save_motion(tmp_path / "m.npz", rng.normal(size=(8, 21, 3)).astype(np.float32))


# ----------------------------------------------------------------------------- motion files
def _damaged(real: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, words the message must contain)."""
    data = real.read_bytes()
    out = {}

    def put(name, blob, why):
        p = tmp / f"{name}.npz"
        p.write_bytes(blob)
        out[name] = (p, why)

    put("empty", b"", "empty (0 bytes)")
    put("truncated", data[: len(data) // 2], "truncated or damaged zip archive")
    mid = len(data) // 2
    put("corrupt", data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 64]) + data[mid + 64:],
        "damaged 'joints' array")
    put("text", b"hello, not a motion\n", "not a zip archive")
    np.save(tmp / "single.npy", np.zeros((4, 21, 3), np.float32))
    put("npy", (tmp / "single.npy").read_bytes(), "single .npy array")
    np.savez(tmp / "nojoints.npz", positions=np.zeros((4, 21, 3)))
    out["no_joints"] = (tmp / "nojoints.npz", "no 'joints' array")
    np.savez(tmp / "shape.npz", joints=np.zeros((4, 22, 3)))
    out["wrong_shape"] = (tmp / "shape.npz", "shape (T, 21, 3)")
    np.savez(tmp / "objects.npz", joints=np.array([{"a": 1}], dtype=object))
    out["objects"] = (tmp / "objects.npz", "Python objects")
    return out


def test_load_motion_names_the_reason(real_clip, tmp_path):
    assert load_motion(real_clip).joints.shape[1:] == (21, 3)
    for name, (path, why) in _damaged(real_clip, tmp_path).items():
        with pytest.raises(MotionFileError) as info:
            load_motion(path)
        msg = str(info.value)
        assert str(path) in msg and "not a valid motion .npz" in msg and why in msg, (name, msg)
        assert "pickle" not in msg.lower(), (name, msg)


def test_recognize_damaged_file_is_one_line(real_clip, tmp_path, capsys, no_models):
    for name, (path, why) in _damaged(real_clip, tmp_path).items():
        rc, line = _run_main(["recognize", str(path)], capsys)
        assert rc == 2, name
        assert line.startswith("error: ") and why in line, (name, line)
    rc, line = _run_main(["recognize", str(tmp_path / "missing.npz")], capsys)
    assert rc == 2 and "does not exist" in line


def test_recognize_console_script_truncated(real_clip, tmp_path):
    bad = tmp_path / "cut.npz"
    bad.write_bytes(real_clip.read_bytes()[:1000])
    r = subprocess.run([COAMD, "recognize", str(bad)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    line = _error_line(r.stderr)
    assert "cut.npz is not a valid motion .npz: truncated or damaged zip archive" in line


def test_debug_shows_the_traceback(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(cli.CLIError, match="empty"):
        cli.main(["recognize", str(empty), "--debug"])


# ----------------------------------------------------------------------------- output paths
def _bad_outputs(tmp_path: Path, name: str) -> list[tuple[Path, str]]:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    (tmp_path / "a_folder.gif").mkdir()
    cases = [(tmp_path / "missing" / name, "does not exist"),
             (blocker / name, "is not a folder")]
    if name.endswith(".gif"):
        cases.append((tmp_path / "a_folder.gif", "is a folder"))
    if not IS_ROOT:  # root writes anywhere
        ro = tmp_path / "read_only"
        ro.mkdir()
        ro.chmod(0o555)
        cases.append((ro / name, "cannot write"))
    return cases


def test_render_unwritable_output(small_motion, tmp_path, capsys):
    for out, why in _bad_outputs(tmp_path, "m.gif"):
        rc, line = _run_main(["render", str(small_motion), "--out", str(out)], capsys)
        assert rc == 2 and "--out" in line and why in line, line
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("option,name", [("--out", "m.npz"), ("--gif", "m.gif"), ("--bvh", "m.bvh")])
def test_generate_checks_outputs_before_the_models(option, name, tmp_path, capsys, no_models):
    for bad, why in _bad_outputs(tmp_path, name):
        argv = ["generate", "a person walks", "--out", str(tmp_path / "ok.npz"), option, str(bad)]
        rc, line = _run_main(argv, capsys)
        assert rc == 2 and option in line and why in line, line
    assert not (tmp_path / "ok.npz").exists()


# ----------------------------------------------------------------------------- serve arguments
def test_serve_port_out_of_range(capsys, no_models):
    for port in ("99999", "-1", "http"):
        rc, line = _run_main(["serve", "--port", port], capsys)
        assert rc == 2 and "--port" in line and "65535" in line, line


def test_serve_session_window_options_are_checked(capsys, no_models):
    for argv, name in ((["--session-history", "0.2"], "--session-history"),
                       (["--session-history", "9"], "--session-history"),
                       (["--session-horizon", "0.1"], "--session-horizon"),
                       (["--session-commit", "2", "--session-horizon", "1.4"], "--session-commit")):
        rc, line = _run_main(["serve", *argv], capsys)
        assert rc == 2 and name in line and "seconds" in line, line


def test_serve_bad_host(capsys, no_models):
    for host, why in (("256.1.1.1", "not a valid IP address"),
                      ("1.2.3", "not a valid IP address"),
                      ("no-such-host.invalid", "does not resolve")):
        rc, line = _run_main(["serve", "--host", host], capsys)
        assert rc == 2 and host in line, line
        assert why.split()[-1] in line, line


def test_serve_port_in_use(capsys, no_models):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        rc, line = _run_main(["serve", "--host", "127.0.0.1", "--port", str(port)], capsys)
    assert rc == 2 and "already in use" in line, line


def test_serve_token_file(tmp_path, capsys, no_models):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    for path, why in ((tmp_path / "missing.txt", "does not exist"), (tmp_path, "is a folder"),
                      (empty, "is empty")):
        rc, line = _run_main(["serve", "--token-file", str(path)], capsys)
        assert rc == 2 and "--token-file" in line and why in line, line
    if not IS_ROOT:
        secret = tmp_path / "secret.txt"
        secret.write_text("abc")
        secret.chmod(0)
        rc, line = _run_main(["serve", "--token-file", str(secret)], capsys)
        assert rc == 2 and "cannot be read" in line, line


_FAKE_CERT = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
_FAKE_KEY = b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def test_serve_tls_files_checked(tmp_path, capsys, no_models):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(_FAKE_CERT)
    key.write_bytes(_FAKE_KEY)
    rc, line = _run_main(["serve", "--tls-cert", str(key), "--tls-key", str(cert)], capsys)
    assert rc == 2 and "not a PEM certificate" in line and "swapped" in line, line
    rc, line = _run_main(["serve", "--tls-cert", str(cert), "--tls-key", str(cert)], capsys)
    assert rc == 2 and "not a PEM private key" in line, line
    rc, line = _run_main(["serve", "--tls-cert", str(cert), "--tls-key", str(tmp_path / "nope.pem")], capsys)
    assert rc == 2 and "does not exist" in line, line
    rc, line = _run_main(["serve", "--tls-cert", str(cert), "--tls-key", str(key)], capsys)
    assert rc == 2 and "damaged certificate" in line, line


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make real keys")
def test_serve_tls_key_of_another_certificate(tmp_path, capsys, no_models):
    for n in ("1", "2"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-keyout", str(tmp_path / f"key{n}.pem"),
                        "-out", str(tmp_path / f"cert{n}.pem")], check=True, capture_output=True)
    rc, line = _run_main(["serve", "--tls-cert", str(tmp_path / "cert1.pem"),
                          "--tls-key", str(tmp_path / "key2.pem")], capsys)
    assert rc == 2 and "does not belong to the certificate" in line, line


def test_serve_console_script_errors():
    for argv, why in ((["--port", "99999"], "65535"), (["--host", "256.1.1.1"], "not a valid IP address"),
                      (["--token-file", "/no/such/token"], "does not exist")):
        r = subprocess.run([COAMD, "serve", *argv], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, (argv, r.stderr)
        assert why in _error_line(r.stderr), argv


# ----------------------------------------------------------------------------- request
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_request_unreachable_server(tmp_path):
    target = f"127.0.0.1:{_free_port()}"
    r = subprocess.run([COAMD, "request", "a person walks", "--server", target, "--timeout", "10",
                        "--out", str(tmp_path / "m.npz")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    line = _error_line(r.stderr)
    assert line.startswith("error: UNAVAILABLE: cannot reach the server at " + target), line
    assert not (tmp_path / "m.npz").exists()


def test_request_arguments_checked_before_connecting(tmp_path, capsys):
    target = f"127.0.0.1:{_free_port()}"
    for extra, why in ((["--out", str(tmp_path / "missing" / "m.npz")], "does not exist"),
                       (["--out", str(tmp_path / "m.npz"), "--gif", str(tmp_path / "no" / "m.gif")], "--gif"),
                       (["--out", str(tmp_path / "m.npz"), "--tls-ca", str(tmp_path / "ca.pem")], "--tls-ca")):
        rc, line = _run_main(["request", "a person walks", "--server", target, *extra], capsys)
        assert rc == 2 and why in line and "UNAVAILABLE" not in line, line


def test_describe_rpc_error_names_the_code():
    import grpc

    from coamd.client.cli import describe_rpc_error

    class Err(grpc.RpcError):
        def __init__(self, code, details):
            self._c, self._d = code, details

        def code(self):
            return self._c

        def details(self):
            return self._d

    msg = describe_rpc_error(Err(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline\nExceeded"), "h:1", 5.0)
    assert msg.startswith("DEADLINE_EXCEEDED: ") and "--timeout 5 s" in msg and "\n" not in msg
    assert describe_rpc_error(Err(grpc.StatusCode.INVALID_ARGUMENT, "duration_s: too long"), "h:1") == \
        "INVALID_ARGUMENT: duration_s: too long"
    assert "--token" in describe_rpc_error(Err(grpc.StatusCode.UNAUTHENTICATED, "missing token"), "h:1")


def test_default_dataset_comes_from_paths():
    from coamd import paths

    assert cli.DEFAULT_DATASET == paths.DEFAULT_DATASET
