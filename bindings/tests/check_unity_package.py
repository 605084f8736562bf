#!/usr/bin/env python3
"""Checks a built Unity package (the .tgz `make unity-package` writes) as Unity and a player would
meet it. Run by CTest (`unity_package_check`) after the `unity_package` target.

    check_unity_package.py PACKAGE.tgz --source unity_client --header bindings/include/coamd/coamd_client.h \
        --repo-license LICENSE [--nunit build/csharp/CoAMD.Tests.dll]

Checks: the tarball's root is package/ with a UPM package.json (name, version, Apache-2.0) whose
LICENSE.md equals the repository's LICENSE and whose CHANGELOG.md has the version; every asset
Unity imports (and every file of Samples~) has a .meta, no .meta is orphaned, GUIDs are 32
lowercase hex digits and unique, committed assets keep their committed GUIDs; the native plugin
exports exactly the functions coamd_client.h declares and nothing else; `ldd` resolves every
plugin file's dependencies inside the package or to the C/C++ runtime; the library loads from
the unpacked package (ctypes) and, with --nunit, the package's C# tests that need no server pass
against it through P/Invoke. Prints the facts it measured. Exit status 1 on any failure.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

SYSTEM_LIBRARIES = {
    "linux-vdso.so.1", "libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1",
    "ld-linux-x86-64.so.2", "libpthread.so.0", "libdl.so.2", "librt.so.1",
}
PLUGIN_DIR = Path("Runtime/Plugins/x86_64")
GUID_RE = re.compile(r"^guid: ([0-9a-f]{32})$", re.M)


def hidden(rel: Path) -> bool:
    return any(p.endswith("~") or p.startswith(".") for p in rel.parts)


def needs_meta(rel: Path) -> bool:
    if rel.suffix == ".meta":
        return False
    if rel.parts and rel.parts[0] == "Samples~":
        return len(rel.parts) > 1 and not any(p.startswith(".") for p in rel.parts)
    return not hidden(rel)


def c_api_functions(header: Path) -> set[str]:
    """Names of the functions coamd_client.h declares with COAMD_API."""
    text = re.sub(r"/\*.*?\*/", "", header.read_text(), flags=re.S)
    return set(re.findall(r"COAMD_API\s+[\w\s\*]+?\b(coamd_\w+)\s*\(", text))


def exported_symbols(lib: Path) -> set[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


class Checker:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.facts: list[str] = []

    def check(self, ok: bool, what: str) -> bool:
        if not ok:
            self.failures.append(what)
        return ok

    def fact(self, text: str) -> None:
        self.facts.append(text)


def check_layout(c: Checker, root: Path, source: Path, repo_license: Path) -> dict:
    manifest = json.loads((root / "package.json").read_text())
    c.check(manifest.get("name") == "com.coamd.motionstream", f"package.json name is {manifest.get('name')}")
    c.check(bool(re.match(r"^\d+\.\d+\.\d+$", manifest.get("version", ""))), "package.json version is not x.y.z")
    c.check(manifest.get("license") == "Apache-2.0", "package.json license is not Apache-2.0")
    c.check((root / "LICENSE.md").read_text() == repo_license.read_text(),
            "LICENSE.md differs from the repository's LICENSE")
    c.check("Apache License" in repo_license.read_text() and "Version 2.0" in repo_license.read_text(),
            "the repository's LICENSE is not the Apache License 2.0 that package.json names")
    c.check(f"## [{manifest.get('version')}]" in (root / "CHANGELOG.md").read_text(),
            "CHANGELOG.md has no entry for the package version")
    notices = (root / "Third Party Notices.md").read_text()
    c.check("CC BY-NC 4.0" in notices, "Third Party Notices.md does not state the weights' data licence")
    for folder in ("Runtime", "Samples~", "Documentation~/ThirdPartyLicenses"):
        c.check((root / folder).is_dir(), f"{folder}/ is missing")
    c.check(not (root / "Tests~").exists(), "the repository's Mono tests are not shipped")
    c.fact(f"package {manifest.get('name')} {manifest.get('version')}")
    return manifest


def check_metas(c: Checker, root: Path, source: Path) -> None:
    guids: dict[str, str] = {}
    assets = 0
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.suffix == ".meta":
            asset = path.with_name(path.name[: -len(".meta")])
            c.check(asset.exists(), f"orphan .meta: {rel}")
            m = GUID_RE.search(path.read_text())
            if c.check(m is not None, f"{rel} has no 32-hex-digit guid"):
                g = m.group(1)
                c.check(g not in guids, f"GUID {g} of {rel} is also used by {guids.get(g)}")
                guids[g] = rel.as_posix()
                committed = source / rel
                if committed.exists():
                    cm = GUID_RE.search(committed.read_text())
                    c.check(cm is not None and cm.group(1) == g, f"{rel}: GUID differs from the committed .meta")
            continue
        if needs_meta(rel):
            assets += 1
            c.check(path.with_name(path.name + ".meta").exists(), f"no .meta for {rel}")
    c.fact(f"{assets} assets, {len(guids)} .meta files, GUIDs unique")


def check_plugin(c: Checker, root: Path, header: Path) -> Path:
    plugin_dir = root / PLUGIN_DIR
    lib = plugin_dir / "libcoamd_client.so"
    if not c.check(lib.exists(), f"{PLUGIN_DIR}/libcoamd_client.so is missing"):
        return lib
    files = sorted(plugin_dir.glob("*.so"))
    for f in plugin_dir.iterdir():
        if f.suffix != ".meta":
            c.check(f.suffix == ".so", f"{f.name}: a plugin file must end in .so to be imported")
            meta = f.with_name(f.name + ".meta").read_text()
            c.check("PluginImporter" in meta and "Standalone: Linux64" in meta and "OS: Linux" in meta,
                    f"{f.name}.meta does not enable the Linux Editor and player")
    api = c_api_functions(header)
    exported = exported_symbols(lib)
    c.check(len(api) > 30, f"only {len(api)} functions parsed from {header}")
    c.check(exported == api, f"exported symbols differ from the C API: extra {sorted(exported - api)[:10]}, "
                             f"missing {sorted(api - exported)[:10]}")
    c.fact(f"libcoamd_client.so exports {len(exported)} symbols = the {len(api)} functions of coamd_client.h")
    outside = []
    glibc, glibcxx = set(), set()
    for f in files:
        out = subprocess.run(["ldd", str(f)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            line = line.strip()
            if not line or line == "statically linked":  # a library that needs no other
                continue
            if "not found" in line:
                outside.append(f"{f.name}: {line}")
                continue
            m = re.match(r"(\S+)\s+=>\s+(\S+)", line)
            name, path = (m.group(1), Path(m.group(2))) if m else (line.split()[0], None)
            if path is not None and path.parent.resolve() == plugin_dir.resolve():
                continue
            if Path(name).name not in SYSTEM_LIBRARIES:
                outside.append(f"{f.name}: {line}")
        ver = subprocess.run(["objdump", "-T", str(f)], capture_output=True, text=True).stdout
        glibc |= set(re.findall(r"GLIBC_(\d+(?:\.\d+)+)", ver))
        glibcxx |= set(re.findall(r"GLIBCXX_(\d+(?:\.\d+)+)", ver))
        rp = subprocess.run(["readelf", "-d", str(f)], capture_output=True, text=True).stdout
        c.check("Library runpath: [$ORIGIN]" in rp, f"{f.name}: RUNPATH is not $ORIGIN")
    c.check(not outside, "ldd finds libraries outside the package:\n    " + "\n    ".join(outside))
    key = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    size = sum(f.stat().st_size for f in files)
    c.fact(f"{len(files)} plugin files ({size / 1e6:.1f} MB): libcoamd_client.so "
           f"{lib.stat().st_size / 1e6:.1f} MB + {len(files) - 1} bundled libraries; ldd: everything else is "
           f"the C/C++ runtime; needs GLIBC {max(glibc, key=key) if glibc else '-'}, "
           f"GLIBCXX {max(glibcxx, key=key) if glibcxx else '-'}")
    return lib


def check_loads(c: Checker, lib: Path) -> None:
    try:
        h = ctypes.CDLL(str(lib), mode=ctypes.RTLD_LOCAL)
    except OSError as exc:
        c.check(False, f"the packaged library does not load: {exc}")
        return
    h.coamd_version.restype = ctypes.c_char_p
    h.coamd_abi_version.restype = ctypes.c_int32
    version, abi = h.coamd_version().decode(), h.coamd_abi_version()
    c.check(abi >= 3, f"coamd_abi_version() = {abi}")
    c.fact(f"loads from the unpacked package: coamd_version() = {version}, ABI {abi}")


def run_nunit(c: Checker, lib: Path, tests_dll: Path) -> None:
    runner = shutil.which("nunit-console")
    if not c.check(runner is not None and tests_dll.exists(), "nunit-console or the C# test build is missing"):
        return
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "nunit.xml"
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "LD_LIBRARY_PATH": str(lib.parent)}
        proc = subprocess.run([runner, "-nologo", "-noshadow", "-nodots", str(tests_dll), "-exclude=Server",
                               f"-xml={xml}"], cwd=tests_dll.parent, env=env, capture_output=True, text=True,
                              timeout=600)
        if not c.check(xml.exists(), "NUnit wrote no result: " + (proc.stdout + proc.stderr)[-1500:]):
            return
        res = ET.parse(xml).getroot()
        total, bad = int(res.get("total")), int(res.get("errors")) + int(res.get("failures"))
        c.check(proc.returncode == 0 and bad == 0 and total > 0,
                f"C# tests against the packaged library: {bad} of {total} failed\n" + proc.stdout[-3000:])
        c.fact(f"C# tests (no server) through P/Invoke against the packaged library: {total - bad}/{total} passed")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("package", help="the .tgz")
    p.add_argument("--source", required=True, help="unity_client (committed .meta files)")
    p.add_argument("--header", required=True, help="coamd_client.h")
    p.add_argument("--repo-license", required=True, help="the repository's LICENSE")
    p.add_argument("--nunit", help="CoAMD.Tests.dll: run its tests that need no server against the package")
    a = p.parse_args(argv)
    c = Checker()
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(a.package) as tar:
            names = tar.getnames()
            c.check(all(n == "package" or n.startswith("package/") for n in names), "entries outside package/")
            c.check(all(m.uid == 0 and m.mtime == 0 for m in tar.getmembers()), "entries not normalised")
            tar.extractall(tmp)
        root = Path(tmp) / "package"
        check_layout(c, root, Path(a.source), Path(a.repo_license))
        check_metas(c, root, Path(a.source))
        lib = check_plugin(c, root, Path(a.header))
        if lib.exists():
            check_loads(c, lib)
            if a.nunit:
                run_nunit(c, lib, Path(a.nunit).resolve())
    for f in c.facts:
        print(f"ok: {f}")
    for f in c.failures:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
