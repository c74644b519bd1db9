"""Benchmark: privacy_table at the study's size, on synthetic faces (a command-line tool, not a test).

Prints a dated Markdown table: wall seconds, CPU seconds and peak memory of
`icm_privacy.privacy.privacy_table` for synthetic studies of 300, 1,000 and 3,000 faces (by default the
study's configuration: 6 face models x 6 codec points x confidence thresholds 0.95 and 0.975, 1000
bootstrap resamples), and of the straightforward implementation (tests/straightforward_privacy.py) at
300 faces, with privacy_table again on exactly its inputs and whether the two tables agree (every number
equal, apart from the NaN rule of docs/privacy_metrics.md). Each measurement runs in a fresh child
process: its peak memory (ru_maxrss, which includes the inputs) is its own. CPU seconds are user + system
time of privacy_table's process over the call (BLAS may use 2 threads).

    .venv/bin/python scripts/benchmark_privacy_scale.py --straightforward-models 1   # about 10 min on 2 cores
    .venv/bin/python scripts/benchmark_privacy_scale.py --faces 300 1000 --models 1 --points 2

(The straightforward implementation's time is linear in models: with all 6 it alone takes about 25 min.)
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
MODELS = ("SFace", "Facenet", "Dlib", "ArcFace", "Facenet512", "VGG-Face")
# (codec, quality) -> (how much of the original a decoded embedding keeps, strength of the codec's own
# artefact: a direction shared by every decoded face of that point, which pulls impostors together).
POINTS = {
    ("jpeg", 10): (0.55, 0.5), ("jpeg", 30): (0.8, 0.3), ("jpeg", 70): (0.95, 0.1),
    ("icm", 32): (0.45, 0.7), ("icm", 37): (0.7, 0.4), ("icm", 47): (0.9, 0.15),
}
DIMENSIONS = 128


def synthetic_study(n_faces: int, n_models: int = len(MODELS), n_points: int = len(POINTS), seed: int = 0):
    """Faces, original and decoded embeddings and mean bpp of a synthetic study (privacy_table's inputs).

    About 1.8 faces per image (1 + Poisson(0.8)); MTCNN-like confidences (1 - Exp(0.015), so the
    thresholds 0.95 and 0.975 keep about 96 % and 81 % of the faces); box sizes spread over every
    face-size bin. Per model, an original embedding is a look shared by all faces plus the face's own
    component; a decoded one keeps part of its original, adds noise and the codec point's artefact,
    a direction shared by all its faces and leaning toward the common look (it makes faces alike).
    """
    rng = np.random.default_rng(seed)
    per_image = []
    while sum(per_image) < n_faces:
        per_image.append(1 + rng.poisson(0.8))
    per_image[-1] -= sum(per_image) - n_faces
    images = np.repeat(np.arange(len(per_image)), per_image)
    faces = pd.DataFrame({
        "face_id": [f"face{i:05d}" for i in range(n_faces)],
        "image": [f"img{i:05d}" for i in images],
        "confidence": np.clip(1 - rng.exponential(0.015, n_faces), 0.9, 1.0),
        "short_side": np.clip(rng.lognormal(np.log(60), 0.7, n_faces), 12, 400).round(),
    })
    models = MODELS[:n_models]
    points = dict(list(POINTS.items())[:n_points])
    original, decoded = {}, {point: {} for point in points}
    for model in models:
        look = rng.normal(size=DIMENSIONS)
        look *= 0.6 / np.linalg.norm(look)
        own = rng.normal(size=(n_faces, DIMENSIONS)) / np.sqrt(DIMENSIONS)
        original[model] = look + own
        for point, (kept, artefact_strength) in points.items():
            artefact = rng.normal(size=DIMENSIONS)  # partly along the shared look: it makes faces alike
            artefact = 0.8 * look / np.linalg.norm(look) + 0.6 * artefact / np.linalg.norm(artefact)
            artefact *= artefact_strength
            noise = rng.normal(size=(n_faces, DIMENSIONS)) / np.sqrt(DIMENSIONS)
            decoded[point][model] = kept * original[model] + np.sqrt(1 - kept**2) * noise + artefact
    mean_bpp = {point: 0.05 + 0.1 * index for index, point in enumerate(points)}
    return faces, original, decoded, mean_bpp


# --- one measurement, in a child process --------------------------------------------------------

def measure(implementation: str, n_faces: int, n_models: int, n_points: int, n_resamples: int,
            table_path: str | None) -> dict:
    """Run one privacy_table and return its wall and CPU seconds and the process's peak memory."""
    if implementation == "straightforward":
        sys.path.insert(0, str(REPO / "tests"))
        from straightforward_privacy import privacy_table
    else:
        from icm_privacy.privacy import privacy_table
    faces, original, decoded, mean_bpp = synthetic_study(n_faces, n_models, n_points)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    table = privacy_table(faces, original, decoded, mean_bpp, confidence_thresholds=THRESHOLDS,
                          n_resamples=n_resamples, seed=0)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    if table_path:
        table.to_pickle(table_path)
    return {"implementation": implementation, "faces": n_faces, "images": int(faces["image"].nunique()),
            "models": n_models, "codec points": n_points, "thresholds": len(THRESHOLDS), "resamples": n_resamples,
            "rows": len(table), "wall s": round(wall, 1),
            "CPU s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
            "peak MiB": round(after.ru_maxrss / 1024)}


def run_measurement(implementation: str, n_faces: int, n_models: int, n_points: int, n_resamples: int,
                    table_path: Path | None = None) -> dict:
    command = [sys.executable, __file__, "--measure", implementation, "--faces", str(n_faces), "--models",
               str(n_models), "--points", str(n_points), "--resamples", str(n_resamples)]
    if table_path:
        command += ["--table", str(table_path)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def agree(table: pd.DataFrame, reference: pd.DataFrame) -> bool:
    """Every number of `table` equals the straightforward `reference`, except where an attacker's TAR
    point was already NaN there (the NaN rule): then all its columns at that FAR must be NaN."""
    expected = reference.copy()
    for column in [c for c in reference.columns if c.startswith("tar_") and not c.endswith(("_ci_low", "_ci_high"))]:
        kind, far = column.removeprefix("tar_").split("_", 1)
        undefined = reference[column].isna() & (reference["n_faces"] > 0)
        ruled = [f"{m}_{kind}_{far}{suffix}" for m in ("tar", "realised_far") for suffix in ("", "_ci_low", "_ci_high")]
        expected.loc[undefined, ruled] = np.nan
    numbers = [c for c in expected.columns if c != "note"]
    return table.columns.equals(expected.columns) and table[numbers].equals(expected[numbers])


# --- the benchmark -------------------------------------------------------------------------------

THRESHOLDS = (0.95, 0.975)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, nargs="+", default=[300, 1000, 3000], help="study sizes to time")
    parser.add_argument("--models", type=int, default=len(MODELS), help="face models (at most 6)")
    parser.add_argument("--points", type=int, default=len(POINTS), help="codec points (at most 6)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--straightforward-faces", type=int, default=300,
                        help="faces for the straightforward implementation (0: skip it)")
    parser.add_argument("--straightforward-models", type=int, default=None,
                        help="its face models (default --models; its time grows linearly with them)")
    parser.add_argument("--measure", choices=["scalable", "straightforward"], help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.faces[0], args.models, args.points, args.resamples, args.table)))
        return

    started = datetime.datetime.now(datetime.timezone.utc)
    load = os.getloadavg()
    rows = [run_measurement("scalable", n, args.models, args.points, args.resamples) for n in args.faces]
    if args.straightforward_faces:
        models = args.straightforward_models or args.models
        with tempfile.TemporaryDirectory() as folder:
            old, new = Path(folder, "straightforward.pkl"), Path(folder, "scalable.pkl")
            rows.append(run_measurement("straightforward", args.straightforward_faces, models, args.points,
                                        args.resamples, old))
            rows.append(run_measurement("scalable", args.straightforward_faces, models, args.points,
                                        args.resamples, new))
            same = agree(pd.read_pickle(new), pd.read_pickle(old))
        for row in rows[-2:]:
            row["tables agree"] = "yes" if same else "NO"
    print(f"# Privacy metrics at the study's scale, {started:%Y-%m-%d %H:%M} UTC\n")
    print(f"{platform.node()}: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}; load average {load[0]:.1f} at start, {os.getloadavg()[0]:.1f} at the end\n")
    print(pd.DataFrame(rows).fillna("").to_markdown(index=False))


if __name__ == "__main__":
    main()

