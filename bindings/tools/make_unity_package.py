#!/usr/bin/env python3
"""Build the Unity package (UPM tarball) from unity_client/ and the shipped native library.

    make_unity_package.py --source unity_client --library build/package/libcoamd_client.so \
        --static-archives build/package/static_archives.txt --repo-license LICENSE \
        --work build/unity_package --out dist

Steps (Python standard library, patchelf and dpkg-query; run by `make unity-package`):

1. Copy the package folder (without Tests~, the repository's Mono tests) and check that every
   asset Unity imports has its committed .meta (stable GUIDs); `--write-missing-meta` adds the
   missing ones to the source folder instead, with new random GUIDs, for a developer to commit.
2. Runtime/Plugins/x86_64/: libcoamd_client.so plus the shared libraries it needs that are not
   the C/C++ runtime (protobuf, RE2, Abseil, zlib): each renamed to end in ``.so`` (Unity imports
   only such files as plugins, so only they reach a player build) and given a SONAME of its own
   (so a copy the host process already loaded under the system name is never taken instead), its
   references rewritten to the new names and RUNPATH set to $ORIGIN. Their .meta files (plugin
   import settings: Editor and Standalone, Linux x86_64) get GUIDs derived from the package name
   and path, so they are the same in every build.
3. Documentation~/ThirdPartyLicenses/: the Debian copyright file of every package whose code is
   linked in or bundled (found with dpkg-query from the archives and libraries used).
4. dist/<name>-<version>.tgz with the ``package/`` root npm and Unity expect, reproducible
   (sorted entries, fixed times and owners).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

# What a player may load from the system: the C and C++ runtime.
SYSTEM_LIBRARIES = {
    "linux-vdso.so.1", "libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1",
    "ld-linux-x86-64.so.2", "libpthread.so.0", "libdl.so.2", "librt.so.1",
}
PLUGIN_DIR = Path("Runtime/Plugins/x86_64")
EXCLUDED_TOP = {"Tests~"}

META_HEADER = "fileFormatVersion: 2\nguid: {guid}\n"
META_TAIL = "  userData: \n  assetBundleName: \n  assetBundleVariant: \n"
META_BODIES = {
    "folder": "folderAsset: yes\nDefaultImporter:\n  externalObjects: {}\n",
    ".cs": ("MonoImporter:\n  externalObjects: {}\n  serializedVersion: 2\n  defaultReferences: []\n"
            "  executionOrder: 0\n  icon: {instanceID: 0}\n"),
    ".asmdef": "AssemblyDefinitionImporter:\n  externalObjects: {}\n",
    "package.json": "PackageManifestImporter:\n  externalObjects: {}\n",
    ".md": "TextScriptImporter:\n  externalObjects: {}\n",
    ".json": "TextScriptImporter:\n  externalObjects: {}\n",
    ".txt": "TextScriptImporter:\n  externalObjects: {}\n",
}
# Native plugin import settings: loaded in the Linux Editor and Linux x86_64 players only.
PLUGIN_META = """PluginImporter:
  externalObjects: {}
  serializedVersion: 2
  iconMap: {}
  executionOrder: {}
  defineConstraints: []
  isPreloaded: 0
  isOverridable: 1
  isExplicitlyReferenced: 0
  validateReferences: 1
  platformData:
  - first:
      : Any
    second:
      enabled: 0
      settings:
        Exclude Editor: 0
        Exclude Linux64: 0
        Exclude OSXUniversal: 1
        Exclude Win: 1
        Exclude Win64: 1
  - first:
      Any: 
    second:
      enabled: 0
      settings: {}
  - first:
      Editor: Editor
    second:
      enabled: 1
      settings:
        CPU: x86_64
        DefaultValueInitialized: true
        OS: Linux
  - first:
      Standalone: Linux64
    second:
      enabled: 1
      settings:
        CPU: x86_64
  - first:
      Standalone: OSXUniversal
    second:
      enabled: 0
      settings:
        CPU: None
  - first:
      Standalone: Win
    second:
      enabled: 0
      settings:
        CPU: None
  - first:
      Standalone: Win64
    second:
      enabled: 0
      settings:
        CPU: None
"""


class PackageError(RuntimeError):
    """The package cannot be built as asked (message says why)."""


def hidden(rel: Path) -> bool:
    """Whether Unity ignores this path (a component ending in ~ or starting with a dot)."""
    return any(p.endswith("~") or p.startswith(".") for p in rel.parts)


def needs_meta(rel: Path) -> bool:
    """Assets Unity imports, plus the contents of Samples~ (copied into a project on import,
    where committed .meta files keep their GUIDs)."""
    if rel.suffix == ".meta":
        return False
    if rel.parts and rel.parts[0] == "Samples~":
        return len(rel.parts) > 1 and not any(p.startswith(".") for p in rel.parts)
    return not hidden(rel)


def meta_text(rel: Path, is_dir: bool, guid: str) -> str:
    if is_dir:
        body = META_BODIES["folder"]
    elif rel.name == "package.json":
        body = META_BODIES["package.json"]
    elif rel.suffix == ".so":
        return META_HEADER.format(guid=guid) + PLUGIN_META + META_TAIL
    else:
        body = META_BODIES.get(rel.suffix, "DefaultImporter:\n  externalObjects: {}\n")
    return META_HEADER.format(guid=guid) + body + META_TAIL


def stable_guid(package: str, rel: Path) -> str:
    """A GUID for a generated asset: the same for the same package name and path in every build."""
    return hashlib.md5(f"{package}:{rel.as_posix()}".encode()).hexdigest()


def check_metas(root: Path, write_missing: bool) -> list[str]:
    """Assets under root without a .meta (written with new GUIDs when write_missing)."""
    missing = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts and rel.parts[0] in EXCLUDED_TOP or not needs_meta(rel):
            continue
        meta = path.with_name(path.name + ".meta")
        if meta.exists():
            continue
        if write_missing:
            meta.write_text(meta_text(rel, path.is_dir(), uuid.uuid4().hex))
        else:
            missing.append(rel.as_posix())
    return missing


def run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PackageError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def needed(lib: Path) -> list[str]:
    """DT_NEEDED entries of an ELF file."""
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", run(["readelf", "-d", str(lib)]))


def resolve_closure(lib: Path) -> dict[str, Path]:
    """soname -> resolved path of every library lib needs (transitively), as the loader finds
    them on this machine (ldd), without the C/C++ runtime."""
    found = {}
    for line in run(["ldd", str(lib)]).splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(\S+)", line)
        if m is None:
            continue
        soname, path = m.group(1), m.group(2)
        if path == "not":
            raise PackageError(f"{lib.name} needs {soname}, which is not installed")
        if soname not in SYSTEM_LIBRARIES:
            found[soname] = Path(path)
    return found


def bundled_name(soname: str) -> str:
    """libfoo.so.3 -> libfoo-3.so (Unity imports only files ending in .so as plugins)."""
    m = re.match(r"^(.*)\.so\.(.+)$", soname)
    return f"{m.group(1)}-{m.group(2)}.so" if m else soname


def bundle_plugins(library: Path, plugin_dir: Path) -> list[Path]:
    """Copy the library and its non-runtime dependencies into plugin_dir, renamed and patched.
    Returns the resolved source paths of the bundled dependencies."""
    if shutil.which("patchelf") is None:
        raise PackageError("patchelf is not installed (make setup-native installs it)")
    plugin_dir.mkdir(parents=True, exist_ok=True)
    deps = resolve_closure(library)
    renames = {soname: bundled_name(soname) for soname in deps}
    main = plugin_dir / library.name
    shutil.copy2(library, main)
    files = [main]
    for soname, src in sorted(deps.items()):
        dst = plugin_dir / renames[soname]
        shutil.copy2(src.resolve(), dst)
        os.chmod(dst, 0o755)
        run(["patchelf", "--set-soname", renames[soname], str(dst)])
        files.append(dst)
    for f in files:
        replace = []
        for n in needed(f):
            if n in renames:
                replace += ["--replace-needed", n, renames[n]]
        if replace:
            run(["patchelf", *replace, str(f)])
        run(["patchelf", "--set-rpath", "$ORIGIN", str(f)])
    return sorted(set(p.resolve() for p in deps.values()))


def debian_package(path: Path) -> str | None:
    """The Debian package owning a file (dpkg-query), None when unknown."""
    for candidate in (path, path.resolve()):
        proc = subprocess.run(["dpkg-query", "-S", str(candidate)], capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout:
            return proc.stdout.split(":")[0].strip()
        # merged /usr: files are registered under /lib or /usr/lib
        alt = str(candidate).replace("/usr/lib/", "/lib/", 1)
        proc = subprocess.run(["dpkg-query", "-S", alt], capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout:
            return proc.stdout.split(":")[0].strip()
    return None


def third_party_licenses(files: list[Path], out_dir: Path) -> list[str]:
    """Copy the Debian copyright file of each file's package into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    packages = sorted({p for p in (debian_package(f) for f in files) if p})
    written = []
    for pkg in packages:
        src = Path("/usr/share/doc") / pkg / "copyright"
        if not src.exists():
            continue
        version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True).stdout
        text = f"Debian package {pkg} {version}\n\n" + src.read_text(errors="replace")
        (out_dir / f"{pkg}.txt").write_text(text)
        written.append(f"{pkg} {version}")
    (out_dir / "README.md").write_text(
        "# Third-party licences of the bundled native code\n\n"
        "The copyright files of the Debian packages whose code `Runtime/Plugins/x86_64/` contains "
        "(linked into libcoamd_client.so or bundled next to it):\n\n"
        + "".join(f"- {w}\n" for w in written))
    return written


def reproducible_tar(src_root: Path, out: Path) -> None:
    """Write src_root as package/... into a gzip tarball, byte-identical for identical inputs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = sorted(src_root.rglob("*"), key=lambda p: p.relative_to(src_root).as_posix())
        for path in [src_root, *paths]:
            rel = path.relative_to(src_root)
            name = "package" if rel == Path(".") else f"package/{rel.as_posix()}"
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.pax_headers = {}
            if info.isdir():
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o755 if os.access(path, os.X_OK) and path.suffix == ".so" else 0o644
                with path.open("rb") as f:
                    tar.addfile(info, f)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
        gz.write(buf.getvalue())


def build(a: argparse.Namespace) -> Path:
    source = Path(a.source).resolve()
    manifest = json.loads((source / "package.json").read_text())
    name, version = manifest["name"], manifest["version"]
    missing = check_metas(source, a.write_missing_meta)
    if missing:
        raise PackageError("assets without a committed .meta (run with --write-missing-meta, then commit):\n  "
                           + "\n  ".join(missing))
    if a.write_missing_meta:
        return source
    license_md = source / "LICENSE.md"
    if Path(a.repo_license).read_text() != license_md.read_text():
        raise PackageError(f"{license_md} differs from the repository's {a.repo_license}")
    changelog = (source / "CHANGELOG.md").read_text()
    if f"## [{version}]" not in changelog:
        raise PackageError(f"CHANGELOG.md has no entry for version {version}")

    work = Path(a.work).resolve()
    stage = work / "package"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(source, stage, ignore=lambda d, names: [n for n in names if (
        (Path(d) == source and n in EXCLUDED_TOP) or n == "__pycache__" or n.endswith(".pyc"))])

    library = Path(a.library).resolve()
    deps = bundle_plugins(library, stage / PLUGIN_DIR)
    # Folder and plugin metas: generated with stable GUIDs (the binaries are not committed).
    for rel in [Path("Runtime/Plugins"), PLUGIN_DIR, *sorted(p.relative_to(stage) for p in (stage / PLUGIN_DIR).iterdir())]:
        meta = stage / rel.parent / (rel.name + ".meta")
        if not meta.exists():
            meta.write_text(meta_text(rel, (stage / rel).is_dir(), stable_guid(name, rel)))

    archives = [Path(p) for p in Path(a.static_archives).read_text().split() if p]
    third_party_licenses(archives + deps, stage / "Documentation~" / "ThirdPartyLicenses")

    out_dir = Path(a.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / ".gitignore").write_text("*\n")  # build output, never committed
    tgz = out_dir / f"{name}-{version}.tgz"
    reproducible_tar(stage, tgz)
    return tgz


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help="the package folder (unity_client)")
    p.add_argument("--library", help="the shipped libcoamd_client.so (CMake target coamd_client_package)")
    p.add_argument("--static-archives", help="file listing the static archives linked into the library")
    p.add_argument("--repo-license", help="the repository's LICENSE (LICENSE.md must equal it)")
    p.add_argument("--work", help="scratch folder")
    p.add_argument("--out", help="folder for the .tgz")
    p.add_argument("--write-missing-meta", action="store_true",
                   help="only add missing .meta files (new GUIDs) to --source and stop")
    a = p.parse_args(argv)
    if not a.write_missing_meta and not all((a.library, a.static_archives, a.repo_license, a.work, a.out)):
        p.error("--library, --static-archives, --repo-license, --work and --out are required")
    try:
        out = build(a)
    except PackageError as exc:
        print(f"make_unity_package: {exc}", file=sys.stderr)
        return 1
    print(f"checked the .meta files of {out}" if a.write_missing_meta else f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
