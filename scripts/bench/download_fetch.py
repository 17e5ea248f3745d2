"""Benchmark: download images from a loopback server that adds latency to every request.

Starts an HTTP server in its own process (so it does not share the client's interpreter) that
serves the real fixture images and waits ``--latency`` seconds (default 0.05) before each
answer, then downloads ``--images`` images (default 500, the fixture images repeated under
distinct names) with tigertrap's fetcher twice: with 16 connections and with one connection at
a time. Every body is checked to decode as an image and written atomically in both runs.

Usage: .venv/bin/python scripts/bench/download_fetch.py [--images N] [--latency S]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURE_IMAGES = REPO.parent / "shared" / "fixtures" / "images"


def serve(folder: Path, latency: float) -> None:
    """Serve ``/<name>`` from ``folder`` after ``latency`` seconds; print the port."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            time.sleep(latency)  # the simulated network round trip
            body = (folder / self.path.lstrip("/").split("~", 1)[-1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


def run(url: str, names: list[str], target: Path, concurrency: int) -> tuple[float, int]:
    from tigertrap.download.fetch import FetchJob, FetchOptions, fetch_images

    jobs = [FetchJob(target / f"{number:04d}_{name}", [f"{url}/{number}~{name}"])
            for number, name in enumerate(names)]
    start = time.perf_counter()
    results = fetch_images(jobs, FetchOptions(concurrency=concurrency, retries=0))
    seconds = time.perf_counter() - start
    return seconds, sum(result.status == "ok" for result in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), float(args.serve[1]))
        return
    folder = Path(tempfile.mkdtemp(prefix="tigertrap-bench-"))
    served = folder / "served"
    served.mkdir()
    for image in sorted(FIXTURE_IMAGES.rglob("*.jp*g")) + sorted(FIXTURE_IMAGES.rglob("*.JPG")):
        shutil.copy2(image, served / image.name.replace("(", "_").replace(")", "_"))
    available = sorted(path.name for path in served.iterdir())
    names = [available[i % len(available)] for i in range(args.images)]
    megabytes = sum((served / name).stat().st_size for name in names) / 1e6
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(served),
                               str(args.latency)], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}"  # type: ignore[union-attr]
        print(f"{args.images} images ({megabytes:.0f} MB), {args.latency * 1000:.0f} ms "
              f"latency per request")
        print(f"{'':24}{'wall s':>10}{'images/s':>10}{'ok':>6}")
        rates = {}
        for label, concurrency in (("16 connections", 16), ("1 connection", 1)):
            seconds, ok = run(url, names, folder / label.replace(" ", "_"), concurrency)
            rates[concurrency] = args.images / seconds
            print(f"{label:24}{seconds:>10.1f}{rates[concurrency]:>10.1f}{ok:>6}")
        print(f"rate ratio 16 / 1: {rates[16] / rates[1]:.1f}x")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
