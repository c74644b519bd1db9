"""Seconds per image to encode and to decode a 640x480 photo with each learned codec, on the CPU.

Weights are random (random_init): the layers, sizes and the number of coded symbols are those of the
trained models, so the network time is theirs; entropy-coding time can differ somewhat because the
symbol statistics differ. Model loading and a warm-up image are excluded. Each row gives wall-clock
seconds and CPU seconds of all threads (process time), plus the load average around the measurement:
on a shared machine wall time grows with the load, CPU time much less.

    .venv/bin/python scripts/benchmark_learned_codecs.py
    .venv/bin/python scripts/benchmark_learned_codecs.py --codecs sa-icm mbt2018 --threads 2
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from icm_privacy.codecs import make_codec
from icm_privacy.codecs.learned import LEARNED_CODECS
from icm_privacy.images import read_rgb8

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PHOTO = SHARED / "datasets/coco-persons/images/000000136334.jpg"  # a real 640x480 COCO photo
# the zoo's smallest and largest configurations (N, M grow at the top qualities); sa-icm has one
QUALITIES = {codec.name: (1, codec.quality_range[1]) for codec in LEARNED_CODECS if codec.name != "sa-icm"}
QUALITIES["sa-icm"] = (78,)


def timed(function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=PHOTO)
    parser.add_argument("--codecs", nargs="+", default=list(QUALITIES), choices=list(QUALITIES))
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rgb = read_rgb8(args.image)
    height, width = rgb.shape[:2]
    print(f"image {args.image.name} {width}x{height}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} cores")
    print("| codec | quality | parameters | encode s (wall) | encode s (CPU) | decode s (wall) | decode s (CPU) "
          "| load avg |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        bitstream = Path(folder) / "image.lic"
        for name in args.codecs:
            for quality in QUALITIES[name]:
                codec = make_codec(name, random_init=True, device="cpu")
                parameters = sum(p.numel() for p in codec.model(quality).parameters())
                codec.encode(rgb[:128, :128], quality, bitstream)  # warm-up: first-call allocations
                codec.decode(bitstream, 128, 128)
                _, encode_wall, encode_cpu = timed(lambda: codec.encode(rgb, quality, bitstream))
                decoded, decode_wall, decode_cpu = timed(lambda: codec.decode(bitstream, width, height))
                assert decoded.shape == rgb.shape
                print(f"| {name} | {quality} | {parameters / 1e6:.1f} M | {encode_wall:.2f} | {encode_cpu:.2f} | "
                      f"{decode_wall:.2f} | {decode_cpu:.2f} | {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
