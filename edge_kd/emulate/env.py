"""Build and locate the ARM64 emulation environment, from the package registries alone.

The environment lives in one cache folder (``$EDGE_KD_ARM_EMU``, default ``~/.cache/edge_kd/arm-emu``):

    rootfs/            arm64 Debian userland with python3 (mmdebstrap --variant=extract, host's suite and mirror)
    site/              aarch64 wheels of the host's runtime versions (onnxruntime, ai-edge-litert, numpy)
    include/           qemu-plugin.h from the Debian source package of the host's qemu-user
    plugin-<hash>.so   the counting plugin (insn_classes.c), compiled with the host's gcc
    executorch/        lib/ and include/ of the host's executorch version's aarch64 wheel, and
                       edge-kd-et-runner (et_runner.cpp) cross-compiled against them (needs g++-aarch64-linux-gnu;
                       without it .pte files are refused under emulation, the rest works)
    cores/<core>/      a hard-linked view of rootfs with /proc/cpuinfo and cpu sysfs of that core
                       (qemu -L serves these files to the guest; ONNX Runtime crashes on the host's x86 ones)
    env.json           what each step built and from which inputs; a step reruns only when its key changes

``ensure_environment()`` builds what is missing or stale and is a no-op otherwise (seconds).
``environment()`` only checks and raises InputError with the one command that builds it.
Host needs (Debian 12 like CI): qemu-user (the dynamic qemu-aarch64, which accepts -plugin),
mmdebstrap, gcc, apt-get/dpkg, and g++-aarch64-linux-gnu for ExecuTorch; ``make arm-emu`` installs them as root.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edge_kd.emulate.cost import CORES, CoreModel
from edge_kd.errors import InputError
from edge_kd.pipeline.atomic import atomic_dir

#: Runtimes run in the guest, by distribution name; the version is the host's own (the very same runtime).
GUEST_PACKAGES = ("onnxruntime", "ai-edge-litert", "numpy")
HOST_TOOLS = {"qemu-aarch64": "qemu-user", "mmdebstrap": "mmdebstrap", "gcc": "gcc", "apt-get": "apt",
              "dpkg-query": "dpkg"}
BUILD_HINT = "run `edge-kd arm-emu` (or `make arm-emu`, which also installs the host packages as root)"
PLUGIN_SOURCE = Path(__file__).with_name("insn_classes.c")
#: Guest packages beyond python: the C++ runtime and OpenMP used by the runtimes' native libraries.
ROOTFS_PACKAGES = ("python3", "libstdc++6", "libgomp1")


def home() -> Path:
    """The cache folder (``$EDGE_KD_ARM_EMU`` or ``~/.cache/edge_kd/arm-emu``)."""
    return Path(os.environ.get("EDGE_KD_ARM_EMU") or Path.home() / ".cache" / "edge_kd" / "arm-emu")


@dataclass(frozen=True)
class Environment:
    """A built environment: paths the runner needs and the versions recorded with every figure."""

    home: Path
    qemu: str
    plugin: Path
    site: Path
    python: str           # guest interpreter path inside the rootfs, e.g. /usr/bin/python3.11
    versions: dict
    et_runner: Path | None = None   # the cross-compiled ExecuTorch runner, when built

    def core_root(self, core: CoreModel) -> Path:
        return self.home / "cores" / core.name


def _run(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    if proc.returncode != 0:
        tail = " | ".join(proc.stdout.decode(errors="replace").strip().splitlines()[-4:])
        raise InputError(f"arm-emu: {what} failed (exit {proc.returncode}): {tail}")
    return proc


def missing_host_tools() -> list[str]:
    """Host tools the build needs and cannot find, as 'tool (Debian package)'."""
    missing = [f"{tool} (package {pkg})" for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None]
    if not missing:
        helptext = subprocess.run(["qemu-aarch64", "-h"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout
        if b"-plugin" not in helptext:
            missing.append("a qemu-aarch64 that accepts -plugin (the dynamic one of package qemu-user, "
                           "not qemu-user-static)")
    return missing


def _qemu_version() -> str:
    out = subprocess.run(["qemu-aarch64", "--version"], stdout=subprocess.PIPE, text=True).stdout
    return out.splitlines()[0].strip() if out else "unknown"


def _host_suite() -> str:
    text = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)", text, re.M)
    if not m:
        raise InputError("arm-emu: cannot tell the host's Debian suite (no VERSION_CODENAME in /etc/os-release); "
                         "the environment is built from the host's Debian mirror")
    return m.group(1)


def _host_sources() -> list[Path]:
    files = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    if Path("/etc/apt/sources.list").exists():
        files.append(Path("/etc/apt/sources.list"))
    files = [f for f in files if re.search(r"^\s*(Types:\s*deb\b|deb\s)", f.read_text(), re.M)]
    if not files:
        raise InputError("arm-emu: no apt sources configured on the host (/etc/apt/sources.list[.d])")
    return files


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _state(root: Path) -> dict:
    try:
        return json.loads((root / "env.json").read_text())
    except (OSError, ValueError):
        return {}


def _save_state(root: Path, state: dict) -> None:
    from edge_kd.pipeline.atomic import atomic_write_json

    atomic_write_json(root / "env.json", state)


def _build_rootfs(root: Path, log) -> dict:
    suite, sources = _host_suite(), _host_sources()
    with atomic_dir(root / "rootfs") as tmp:
        log(f"arm-emu: arm64 userland ({suite}, {', '.join(ROOTFS_PACKAGES)}) with mmdebstrap")
        _run(["mmdebstrap", "--quiet", "--variant=extract", "--arch=arm64", "--include=" + ",".join(ROOTFS_PACKAGES),
              suite, str(tmp), *map(str, sources)], "mmdebstrap")
        pythons = sorted(p.name for p in (tmp / "usr" / "bin").glob("python3.*") if re.fullmatch(r"python3\.\d+", p.name))
        if not pythons:
            raise InputError(f"arm-emu: the {suite} arm64 userland has no python3.X interpreter")
    return {"suite": suite, "python": "/usr/bin/" + pythons[-1]}


def _glibc_tags(glibc: str) -> list[str]:
    # aarch64 wheels carry one manylinux_2_X tag each (ai-edge-litert: only 2_27): offer every X up to
    # the guest's glibc, or pip silently picks an old release that has a tag it knows.
    major, minor = (int(x) for x in glibc.split(".")[:2])
    return [f"manylinux_{major}_{m}_aarch64" for m in range(minor, 16, -1)] + ["manylinux2014_aarch64"]


def _guest_glibc(rootfs: Path) -> str:
    libs = sorted(rootfs.glob("usr/lib/aarch64-linux-gnu/libc.so.6")) + sorted(rootfs.glob("lib/aarch64-linux-gnu/libc.so.6"))
    for lib in libs:
        m = re.search(rb"GNU C Library \(.*?\) (?:stable )?release version (\d+\.\d+)", lib.read_bytes())
        if m:
            return m.group(1).decode()
    raise InputError("arm-emu: cannot find the guest's glibc version in the arm64 userland")


def _pins() -> dict[str, str]:
    from importlib import metadata

    pins = {}
    for dist in GUEST_PACKAGES:
        try:
            pins[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            raise InputError(f"arm-emu: {dist} is not installed on the host; the guest runs the host's version "
                             f"of each runtime (pip install {dist})") from None
    return pins


def _build_site(root: Path, python: str, pins: dict[str, str], log) -> dict:
    pyver = re.search(r"python(\d+\.\d+)$", python).group(1)
    abi = "cp" + pyver.replace(".", "")
    glibc = _guest_glibc(root / "rootfs")
    with atomic_dir(root / "site") as tmp:
        log(f"arm-emu: aarch64 wheels {', '.join(f'{k}=={v}' for k, v in pins.items())} for python {pyver}")
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
               "--target", str(tmp), "--only-binary=:all:", "--python-version", pyver, "--implementation", "cp",
               "--abi", abi]
        for tag in _glibc_tags(glibc):
            cmd += ["--platform", tag]
        _run(cmd + [f"{k}=={v}" for k, v in pins.items()], "pip install of the aarch64 wheels (needs PyPI)")
        if platform.python_version().rsplit(".", 1)[0] == pyver:
            # Byte-compile on the host: the guest interpreter then skips compiling at ~100x emulation cost.
            subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(tmp)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"glibc": glibc, "pins": pins}


def _fetch_plugin_header(root: Path, log) -> dict:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${source:Package} ${source:Version}", "qemu-user"],
                          stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise InputError("arm-emu: qemu-user is not installed as a Debian package; the plugin header comes from "
                         "its matching source package")
    package, version = proc.stdout.split()
    with tempfile.TemporaryDirectory(prefix="edge-kd-qemu-src-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "parts").mkdir()
        for d in ("lists/partial", "cache/archives/partial", "src"):
            (tmp / d).mkdir(parents=True)
        # A private apt configuration adding deb-src twins of the host's sources: nothing global changes.
        for i, src in enumerate(_host_sources()):
            text = src.read_text()
            if src.suffix == ".sources":
                (tmp / "parts" / f"{i}.sources").write_text(re.sub(r"^Types:.*$", "Types: deb-src", text, flags=re.M))
            else:
                (tmp / "parts" / f"{i}.list").write_text(re.sub(r"^(\s*)deb(\s)", r"\1deb-src\2", text, flags=re.M))
        opts = ["-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={tmp / 'parts'}",
                "-o", f"Dir::State::Lists={tmp / 'lists'}", "-o", f"Dir::Cache={tmp / 'cache'}",
                "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=" + ("root" if os.getuid() == 0 else ""),
                "-qq"]
        log(f"arm-emu: qemu-plugin.h from the {package} {version} source package")
        _run(["apt-get", *opts, "update"], "apt-get update of the deb-src index")
        _run(["apt-get", *opts, "source", "--download-only", f"{package}={version}"], "apt-get source", cwd=tmp / "src")
        tarballs = sorted((tmp / "src").glob("*.orig.tar.*"))
        if not tarballs:
            raise InputError(f"arm-emu: the {package} {version} source package has no upstream tarball")
        _run(["tar", "-xf", str(tarballs[0]), "-C", str(tmp / "src"), "--wildcards", "*/include/qemu/qemu-plugin.h"],
             "extracting qemu-plugin.h")
        header = next((tmp / "src").glob("*/include/qemu/qemu-plugin.h"))
        (root / "include").mkdir(exist_ok=True)
        shutil.copyfile(header, root / "include" / "qemu-plugin.h")
    return {"qemu_source": f"{package} {version}"}


def _build_plugin(root: Path) -> Path:
    digest = hashlib.sha256(PLUGIN_SOURCE.read_bytes() + (root / "include" / "qemu-plugin.h").read_bytes()).hexdigest()[:12]
    out = root / f"plugin-{digest}.so"
    if not out.exists():
        tmp = out.with_name(f".tmp-{out.name}-{os.getpid()}")
        _run(["gcc", "-O2", "-shared", "-fPIC", "-Wall", "-I", str(root / "include"), "-o", str(tmp), str(PLUGIN_SOURCE)],
             "compiling the counting plugin")
        os.replace(tmp, out)
        for old in root.glob("plugin-*.so"):
            if old != out:
                old.unlink(missing_ok=True)
    return out


ET_TOOL = "aarch64-linux-gnu-g++"
ET_SOURCE = Path(__file__).with_name("et_runner.cpp")
#: The wheel's runtime libraries the runner links: core runtime, XNNPACK delegate, optimized and quantized kernels.
ET_LIBS = ("executorch_backend_xnnpack", "executorch_kernels_optimized", "executorch_kernels_quantized",
           "executorch_threadpool", "executorch")


def _et_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("executorch")
    except metadata.PackageNotFoundError:
        return None


def _build_executorch(root: Path, python: str, glibc: str, version: str, log) -> dict:
    """The aarch64 executorch wheel's lib/ and include/, and the C++ runner compiled against them."""
    pyver = re.search(r"python(\d+\.\d+)$", python).group(1)
    with atomic_dir(root / "executorch") as tmp:
        log(f"arm-emu: aarch64 executorch=={version} wheel and the C++ runner ({ET_TOOL})")
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
               "--dest", str(tmp / "wheel"), "--only-binary=:all:", "--python-version", pyver, "--implementation", "cp",
               "--abi", "cp" + pyver.replace(".", "")]
        for tag in _glibc_tags(glibc):
            cmd += ["--platform", tag]
        _run(cmd + [f"executorch=={version}"], "pip download of the aarch64 executorch wheel (needs PyPI)")
        wheel = next((tmp / "wheel").glob("executorch-*.whl"))
        import zipfile

        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.startswith(("executorch/lib/", "executorch/include/")) and not name.endswith("/"):
                    target = tmp / name[len("executorch/"):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(name))
        shutil.rmtree(tmp / "wheel")
        include = tmp / "include"
        _run([ET_TOOL, "-std=c++17", "-O2", "-I", str(include),
              "-I", str(include / "executorch" / "runtime" / "core" / "portable_type" / "c10"),
              "-DC10_USING_CUSTOM_GENERATED_MACROS", "-o", str(tmp / "edge-kd-et-runner"), str(ET_SOURCE),
              "-L", str(tmp / "lib"), "-Wl,--no-as-needed", *[f"-l{lib}" for lib in ET_LIBS],
              "-Wl,-rpath,$ORIGIN/lib"], "cross-compiling the ExecuTorch runner")
    return {"version": version}


def _cpuinfo(core: CoreModel) -> str:
    return (f"processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: {core.cpuinfo_features}\nCPU implementer\t: 0x41\n"
            f"CPU architecture: 8\nCPU variant\t: {core.cpuinfo_variant}\nCPU part\t: {core.cpuinfo_part}\n"
            f"CPU revision\t: 1\n\n")


def _midr(core: CoreModel) -> int:
    # MIDR_EL1: implementer, variant, architecture (0xF), part number, revision.
    return (0x41 << 24) | (int(core.cpuinfo_variant, 16) << 20) | (0xF << 16) | (int(core.cpuinfo_part, 16) << 4) | 1


def _build_core_view(root: Path, core: CoreModel) -> None:
    with atomic_dir(root / "cores" / core.name) as tmp:
        # Hard links: one core's view costs inodes, not another 80 MB.
        _run(["cp", "-al", f"{root / 'rootfs'}/.", str(tmp)], "linking the core's rootfs view")
        (tmp / "proc").mkdir(exist_ok=True)
        (tmp / "proc" / "cpuinfo").write_text(_cpuinfo(core))
        cpu = tmp / "sys" / "devices" / "system" / "cpu"
        (cpu / "cpu0" / "topology").mkdir(parents=True, exist_ok=True)
        (cpu / "cpu0" / "cpufreq").mkdir(parents=True, exist_ok=True)
        for name in ("possible", "present", "online"):
            (cpu / name).write_text("0\n")
        (cpu / "kernel_max").write_text("0\n")
        (cpu / "cpu0" / "cpufreq" / "cpuinfo_max_freq").write_text(f"{int(core.clock_ghz * 1e6)}\n")
        (cpu / "cpu0" / "regs" / "identification").mkdir(parents=True, exist_ok=True)
        (cpu / "cpu0" / "regs" / "identification" / "midr_el1").write_text(f"0x{_midr(core):016x}\n")
        for name, value in (("physical_package_id", "0"), ("core_id", "0"), ("cluster_id", "0"),
                            ("core_siblings", "1"), ("core_siblings_list", "0"), ("thread_siblings", "1"),
                            ("thread_siblings_list", "0"), ("cluster_cpus_list", "0")):
            (cpu / "cpu0" / "topology" / name).write_text(value + "\n")


def ensure_environment(log=print) -> Environment:
    """Build whatever is missing or stale; a second call does nothing but checks (idempotent).

    Raises InputError (one line, exit 2) naming what is missing when it cannot: host tools, a
    registry, a wheel for the host's runtime version.

    >>> env = ensure_environment()          # doctest: +SKIP
    >>> env.versions["pins"]["onnxruntime"] # doctest: +SKIP
    '1.32.0'
    """
    missing = missing_host_tools()
    if missing:
        raise InputError("arm-emu: missing host tools: " + ", ".join(missing) +
                         " (Debian: apt-get install qemu-user mmdebstrap gcc; or `make arm-emu` as root)")
    root = home()
    if "," in str(root):
        raise InputError(f"arm-emu: the cache folder {root} contains a comma, which qemu's -plugin option cannot pass")
    root.mkdir(parents=True, exist_ok=True)
    state = _state(root)
    steps = state.setdefault("steps", {})

    rootfs_key = _key("rootfs", _host_suite(), ROOTFS_PACKAGES)
    if steps.get("rootfs", {}).get("key") != rootfs_key or not (root / "rootfs" / "usr" / "bin").is_dir():
        steps["rootfs"] = {"key": rootfs_key, **_build_rootfs(root, log)}
        steps.pop("site", None)
        steps.pop("cores", None)
        _save_state(root, state)
    python = steps["rootfs"]["python"]

    pins = _pins()
    site_key = _key("site", rootfs_key, pins)
    if steps.get("site", {}).get("key") != site_key or not (root / "site").is_dir():
        steps["site"] = {"key": site_key, **_build_site(root, python, pins, log)}
        _save_state(root, state)

    qemu = _qemu_version()
    header_key = _key("header", qemu)
    if steps.get("header", {}).get("key") != header_key or not (root / "include" / "qemu-plugin.h").exists():
        steps["header"] = {"key": header_key, **_fetch_plugin_header(root, log)}
        _save_state(root, state)
    plugin = _build_plugin(root)

    et_version = _et_version()
    if et_version and shutil.which(ET_TOOL):
        et_key = _key("executorch", rootfs_key, et_version, ET_SOURCE.read_bytes().hex(), ET_LIBS)
        if steps.get("executorch", {}).get("key") != et_key or not (root / "executorch" / "edge-kd-et-runner").exists():
            steps["executorch"] = {"key": et_key, **_build_executorch(root, python, steps["site"]["glibc"],
                                                                     et_version, log)}
            _save_state(root, state)
    elif not steps.get("executorch"):
        log(f"arm-emu: ExecuTorch .pte files will not run under emulation: "
            f"{'executorch is not installed on the host' if not et_version else ET_TOOL + ' is missing (package g++-aarch64-linux-gnu)'}")

    cores = steps.setdefault("cores", {})
    for core in CORES.values():
        core_key = _key("core", rootfs_key, _cpuinfo(core), core.clock_ghz, _midr(core))
        if cores.get(core.name) != core_key or not (root / "cores" / core.name / "proc" / "cpuinfo").exists():
            _build_core_view(root, core)
            cores[core.name] = core_key
            _save_state(root, state)
    return _environment(root, steps, qemu, plugin)


def _environment(root: Path, steps: dict, qemu: str, plugin: Path) -> Environment:
    et = steps.get("executorch")
    et_current = bool(et) and et.get("version") == _et_version() and (root / "executorch" / "edge-kd-et-runner").exists()
    pins = dict(steps["site"]["pins"], **({"executorch": et["version"]} if et_current else {}))
    return Environment(home=root, qemu=qemu, plugin=plugin, site=root / "site", python=steps["rootfs"]["python"],
                       et_runner=root / "executorch" / "edge-kd-et-runner" if et_current else None,
                       versions={"qemu": qemu, "suite": steps["rootfs"]["suite"], "python": steps["rootfs"]["python"],
                                 "glibc": steps["site"]["glibc"], "pins": pins,
                                 "qemu_source": steps["header"]["qemu_source"]})


def environment() -> Environment:
    """The built environment, or InputError with how to build it (nothing is built here)."""
    root = home()
    state = _state(root)
    steps = state.get("steps", {})
    plugins = sorted(root.glob("plugin-*.so"))
    if not (steps.get("rootfs") and steps.get("site") and steps.get("header") and plugins
            and shutil.which("qemu-aarch64")):
        raise InputError(f"no ARM64 emulation environment in {root}; {BUILD_HINT}")
    pins = _pins()
    if steps["site"].get("pins") != pins:
        raise InputError(f"the ARM64 emulation environment in {root} has runtimes {steps['site'].get('pins')} but the "
                         f"host has {pins}; {BUILD_HINT} to rebuild it")
    qemu = _qemu_version()
    digest = hashlib.sha256(PLUGIN_SOURCE.read_bytes() + (root / "include" / "qemu-plugin.h").read_bytes()).hexdigest()[:12]
    plugin = root / f"plugin-{digest}.so"
    if not plugin.exists():
        raise InputError(f"the counting plugin in {root} is stale; {BUILD_HINT}")
    return _environment(root, steps, qemu, plugin)
