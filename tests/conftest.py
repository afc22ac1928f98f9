import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "datasets"

# tests and CI read the data root beside the checkout unless one is set
if not os.environ.get("VAEBOOK_DATA") and SHARED_DATA.exists():
    os.environ["VAEBOOK_DATA"] = str(SHARED_DATA)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of small matrices, where thread start-up costs more than
    it saves; use with pytestmark = pytest.mark.usefixtures("one_thread")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic_images(n: int = 64, shape=(1, 28, 28), seed: int = 0) -> torch.Tensor:
    """Random smooth blobs in [0, 1] (B, C, H, W): images with structure, made on the spot."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(n, shape[0], shape[1] // 4, shape[2] // 4, generator=generator)
    smooth = torch.nn.functional.interpolate(base, size=shape[1:], mode="bilinear")
    return torch.sigmoid((smooth - 0.5) * 12)  # nearly binary, so a VAE has much to learn


@contextlib.contextmanager
def http_server(folder: Path):
    """`python -m http.server` on 127.0.0.1 serving ``folder``; yields its base URL."""
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    server = subprocess.Popen(
        [*command, "--directory", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):  # up within a few seconds
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait()
