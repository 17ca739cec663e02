"""What tests share besides fixtures: where the data is, the CLI as a user runs it, tiny BEIR folders, and
an encoder's views as the model tasks score."""
from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from embedbench.data.beir import BeirDataset, write_beir

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EMBEDBENCH_DATA") or REPO.parent / "shared" / "data")
SCIFACT = DATA / "beir" / "scifact"
needs_data = pytest.mark.skipif(not (SCIFACT / "corpus.jsonl").is_file(),
                                reason=f"the shared data sets are not at {DATA} (set EMBEDBENCH_DATA)")


def beir_folder(folder: Path, corpus: dict, queries: dict, qrels: dict, split: str = "test") -> Path:
    """A BEIR folder with the given content (corpus: id -> {title, text})."""
    return write_beir(folder, BeirDataset(folder.name, corpus, queries, qrels), split)


def scored(encoder, views=None, batch_size: int = 16, cache=None):
    """``encoder``'s views (default: the full view) as tasks score them, fp32 as mteb encodes; with ``cache``
    (the suite's ``embeddings``), texts it already holds are read back."""
    from embedbench.config import EncodeConfig, ViewsConfig
    from embedbench.embedding.embedder import Embedder
    from embedbench.models import EncoderModel

    views = views or encoder.views(ViewsConfig())
    embedder = Embedder(encoder, views.layers, EncodeConfig(batch_size=batch_size, precision="fp32"), cache)
    return EncoderModel(embedder, views)


def mlflow_runs(cwd: Path, experiment: str = "embedbench") -> list:
    """The runs of the local store under ``cwd``, oldest first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{cwd}/outputs/mlflow.db")
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"]) if found else []


def results_files(cwd: Path) -> list[Path]:
    """Every results.json of single runs and sweeps under ``cwd``."""
    return sorted(p for sub in ("runs", "multirun") for p in (cwd / "outputs" / sub).rglob("results.json"))


def run_cli(*args, cwd: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "embedbench", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"embedbench {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def run_main(*args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """The CLI's ``main`` in this process, reported as :func:`run_cli` reports a child's: the same code
    path (Hydra, checks, MLflow) without paying the imports again."""
    from embedbench import cli

    out, err = io.StringIO(), io.StringIO()
    argv, here = sys.argv, os.getcwd()
    sys.argv = ["embedbench", *args]
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
        os.chdir(here)
    if check and code != 0:
        raise AssertionError(f"embedbench {' '.join(args)} exited {code}:\n{err.getvalue()[-3000:]}")
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    """Until ``url`` answers (any HTTP status), or fail if ``process`` ends first."""
    deadline = time.time() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            assert process.poll() is None and time.time() < deadline, f"{url} did not come up"
            time.sleep(0.5)


def mlflow_server(folder: Path, port: int, *options: str, env: dict | None = None) -> subprocess.Popen:
    """A real ``mlflow server`` on 127.0.0.1:``port`` (sqlite store and artifacts in ``folder``), serving."""
    folder.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder}/store.db",
         "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", *options], cwd=folder, stdout=subprocess.DEVNULL, stderr=open(folder / "server.log", "a"),
        env={**os.environ, **(env or {})}, start_new_session=True)
    wait_for(f"http://127.0.0.1:{port}/health", server)
    return server


class TrackingServer:
    """``mlflow server`` on a free port, which a test can kill (as a crash would) and start again."""

    def __init__(self, folder: Path, *options: str, env: dict | None = None):
        self.folder, self.options, self.env = folder, options, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start()

    def start(self) -> None:
        self.process = mlflow_server(self.folder, self.port, *self.options, env=self.env)

    def kill(self) -> None:
        stop(self.process, signal.SIGKILL)

    def stop(self) -> None:
        stop(self.process)


def stop(server: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """The server and the workers it started (``mlflow server`` runs uvicorn in a child process)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, sig)
    server.wait(timeout=30)


@contextlib.contextmanager
def small_disk(folder: Path, size: str):
    """A tmpfs of ``size`` mounted on ``folder``: a real filesystem that fills up (needs root, as CI runs)."""
    import pytest

    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def resize_disk(folder: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True, capture_output=True)


def fill_disk(folder: Path) -> None:
    """Write a filler file until the filesystem holding ``folder`` has no space left."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        for size in (1 << 20, 1 << 12, 1):  # big blocks, then the last partial ones
            with contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * size)


class FileServer:
    """Files of a folder over HTTP on 127.0.0.1, as a download source serves them: Content-Length, range
    requests (206), and, for the tests of interrupted transfers, a cut after ``cut_after`` bytes (once).
    ``requests`` records each request's path and Range header."""

    def __init__(self, folder: Path, cut_after: int | None = None):
        import http.server
        import threading

        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                path = folder / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
                start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
                if start >= len(body) and start:
                    self.send_error(416)
                    return
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if server.cut_after is not None:
                    self.wfile.write(body[start:start + server.cut_after])
                    server.cut_after = None
                    return  # the connection closes short of Content-Length
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        self.cut_after, self.requests = cut_after, []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
