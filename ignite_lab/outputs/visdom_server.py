"""Start, stop and inspect a local Visdom server, and give it its browser assets offline.

visdom 0.2.4 downloads ~20 scripts from CDNs at every start and dies offline. The same files
are on the npm registry at the exact versions it names, so we place them once into visdom's
static folder and mark them built; after that the server starts with no network at all.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from ignite_lab.core.errors import UserError

log = logging.getLogger(__name__)

MATHJAX = "js/mathjax/2.7.5/"
# (npm package, file inside the package, destination under visdom's static/)
NPM_ASSETS: list[tuple[str, str, str]] = [
    ("jquery@3.1.1", "dist/jquery.min.js", "js/jquery.min.js"),
    ("bootstrap@3.3.7", "dist/js/bootstrap.min.js", "js/bootstrap.min.js"),
    ("bootstrap@3.3.7", "dist/css/bootstrap.min.css", "css/bootstrap.min.css"),
    *[
        (
            "bootstrap@3.3.7",
            f"dist/fonts/glyphicons-halflings-regular.{ext}",
            f"fonts/glyphicons-halflings-regular.{ext}",
        )
        for ext in ("eot", "woff2", "woff", "ttf")
    ],
    (
        "bootstrap@3.3.7",
        "dist/fonts/glyphicons-halflings-regular.svg",
        "fonts/glyphicons-halflings-regular.svg#glyphicons_halflingsregular",
    ),
    ("react@16.2.0", "umd/react.production.min.js", "js/react-react.min.js"),
    ("react-dom@16.2.0", "umd/react-dom.production.min.js", "js/react-dom.min.js"),
    ("react-modal@3.1.10", "dist/react-modal.min.js", "js/react-modal.min.js"),
    ("plotly.js-dist-min@2.11.1", "plotly.min.js", "js/plotly-plotly.min.js"),
    ("sjcl@1.0.7", "sjcl.js", "js/sjcl.js"),
    ("layout-bin-packer@1.4.0", "dist/layout-bin-packer.js", "js/layout_bin_packer.js"),
    ("layout-bin-packer@1.4.0", "dist/layout-bin-packer.js.map", "js/layout-bin-packer.js.map"),
    ("d3@3.5.17", "d3.min.js", "js/d3.v3.min.js"),
    ("d3-selection-multi@1.0.1", "build/d3-selection-multi.js", "js/d3-selection-multi.v1.js"),
    ("save-svg-as-png@1.4.17", "lib/saveSvgAsPng.js", "js/saveSvgAsPng.js"),
    ("react-resizable@1.4.6", "css/styles.css", "css/react-resizable-styles.css"),
    ("react-grid-layout@0.16.3", "css/styles.css", "css/react-grid-layout-styles.css"),
    ("classnames@2.2.5", "index.js", "fonts/classnames"),
    *[
        ("mathjax@2.7.5", path, MATHJAX + path)
        for path in (
            "MathJax.js",
            "config/Safe.js",
            "config/TeX-AMS-MML_HTMLorMML.js",
            "extensions/Safe.js",
            "jax/output/SVG/jax.js",
            "jax/output/SVG/config.js",
            "jax/output/SVG/fonts/TeX/fontdata.js",
            "jax/output/SVG/fonts/TeX/Size1/Regular/Main.js",
        )
    ],
]


def static_dir() -> Path:
    import visdom

    return Path(visdom.__file__).resolve().parent / "static"


def missing_assets(static: Path | None = None) -> list[str]:
    """Asset files visdom would try to download at start (empty when it can start offline)."""
    import visdom

    static = static or static_dir()
    built = static / "version.built"
    missing = [dest for _, _, dest in NPM_ASSETS if not (static / dest).is_file()]
    if not built.is_file() or built.read_text().strip() != visdom.__version__:
        missing.append("version.built")
    return missing


def install_assets(static: Path | None = None) -> int:
    """Fetch every missing asset with ``npm pack`` (the npm registry only) and mark visdom built.

    Returns how many files were placed. Raises UserError saying what to do when npm is absent
    or cannot reach its registry.
    """
    import visdom

    static = static or static_dir()
    if not missing_assets(static):
        return 0
    npm = shutil.which("npm")
    if npm is None:
        raise UserError(
            "Visdom's browser assets are missing and npm is not installed, so they cannot be fetched offline. "
            "Install Node.js and npm (Debian: apt-get install npm) and run `ignite-lab visdom assets`, "
            "or start visdom once with internet access (python -m visdom.server) so it downloads them itself."
        )
    packages = sorted({package for package, _, _ in NPM_ASSETS})
    with tempfile.TemporaryDirectory() as tmp:
        try:
            proc = subprocess.run(
                [npm, "pack", "--silent", *packages], cwd=tmp, capture_output=True, text=True, timeout=300
            )
        except subprocess.TimeoutExpired:
            raise UserError("npm pack timed out after 300 s: is the npm registry reachable?") from None
        if proc.returncode != 0:
            raise UserError(
                "npm could not fetch Visdom's browser assets from its registry "
                f"(npm pack exit {proc.returncode}: {proc.stderr.strip()[-400:]}). Without internet or npm the Visdom "
                "page cannot be served; metrics are still written to each run directory."
            )
        tarballs = dict(zip(packages, proc.stdout.split(), strict=True))
        placed = 0
        for package, inner, dest in NPM_ASSETS:
            target = static / dest
            with tarfile.open(Path(tmp) / tarballs[package]) as tar:
                member = tar.extractfile(f"package/{inner}")
                if member is None:
                    raise UserError(f"{package} from npm has no {inner}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(member.read())
                placed += 1
    (static / "version.built").write_text(visdom.__version__)
    return placed


@dataclass
class ServerPaths:
    """Where one server's state lives: env files (plots survive restarts), its log and PID file."""

    state_dir: Path
    port: int

    @property
    def env_path(self) -> Path:
        return self.state_dir / "envs"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"visdom-{self.port}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"visdom-{self.port}.log"


def default_state_dir() -> Path:
    return Path(os.environ.get("IGNITE_LAB_HOME", Path.home() / ".cache" / "ignite-lab")) / "visdom"


def answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether a Visdom (any HTTP server) answers on host:port within ``timeout`` seconds."""
    try:
        return requests.get(f"http://{host}:{port}/", timeout=timeout).status_code < 500
    except requests.RequestException:
        return False


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _our_pid(paths: ServerPaths) -> int | None:
    """The PID in our PID file, if that process is alive and is a visdom server."""
    try:
        pid = int(paths.pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except (OSError, ValueError):
        return None
    return pid if b"visdom.server" in cmdline else None


def start_server(paths: ServerPaths, host: str = "127.0.0.1", enable_login: bool = False, timeout: float = 30.0) -> int:
    """Start ``python -m visdom.server`` in the background and wait until it answers. Returns its PID."""
    loopback = is_loopback(host)
    if not loopback and not enable_login:
        log.warning(
            "Visdom will listen on all network interfaces without a login: anyone who can reach port %d can read "
            "and change your plots. Add --enable-login or keep the default 127.0.0.1.",
            paths.port,
        )
    pid = _our_pid(paths)
    if pid is not None and answers("127.0.0.1", paths.port):
        log.info("Visdom is already running on port %d (pid %d)", paths.port, pid)
        return pid
    if answers("127.0.0.1", paths.port, timeout=1.0):
        raise UserError(f"port {paths.port} is already in use by another server; pick another with --port")
    placed = install_assets()
    if placed:
        log.info("installed %d Visdom browser files from the npm registry", placed)
    paths.env_path.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "visdom.server", "-port", str(paths.port), "-env_path", str(paths.env_path)]
    if loopback:
        command.append("-bind_local")
    env = dict(os.environ)
    if enable_login:
        if not (env.get("VISDOM_USERNAME") and env.get("VISDOM_PASSWORD")):
            raise UserError("--enable-login reads the credentials from VISDOM_USERNAME and VISDOM_PASSWORD; set both")
        command.append("-enable_login")
        env["VISDOM_USE_ENV_CREDENTIALS"] = "1"
    with open(paths.log_file, "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    paths.pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            paths.pid_file.unlink(missing_ok=True)
            tail = paths.log_file.read_text(errors="replace")[-1500:]
            raise UserError(
                f"the Visdom server exited with code {proc.returncode}; its log ({paths.log_file}) ends:\n{tail}"
            )
        if answers("127.0.0.1", paths.port, timeout=1.0):
            return proc.pid
        time.sleep(0.2)
    stop_server(paths)
    raise UserError(
        f"the Visdom server did not answer on port {paths.port} within {timeout:.0f} s; see {paths.log_file}"
    )


def stop_server(paths: ServerPaths, timeout: float = 10.0) -> bool:
    """End the server our PID file names (and only it). False when there was none."""
    pid = _our_pid(paths)
    paths.pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def server_status(paths: ServerPaths) -> tuple[bool, int | None]:
    """(something answers on the port, PID of the server we started or None)."""
    return answers("127.0.0.1", paths.port), _our_pid(paths)
