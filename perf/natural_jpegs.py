"""Natural-looking JPEGs for loader benchmarks, made from the photographs scikit-image ships.

scikit-image bundles a handful of real photographs in ``skimage/data`` that load without the
network. Each of the 10 classes is one photograph; every image is a seeded random crop of it
(area fraction 0.25-1 of the largest crop of the drawn aspect ratio, aspect 3:4-4:3), resized
so the longer side is ``size`` px (INTER_AREA when shrinking, cubic when enlarging), flipped
at random, with a mild brightness/gamma change, saved as baseline JPEG at ``quality`` into
``<root>/<class>/<i>.jpg`` (ImageNet's ImageFolder layout). The two greyscale photographs
get a random colour cast, so every image has real chroma. Writes ``<root>/done.json`` last;
a root whose ``done.json`` matches the arguments is reused.

    .venv/bin/python -m perf.natural_jpegs data/bench/natural --count 3000
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

# (class name, file in skimage/data): photographs only (no charts, drawings or phantoms).
SOURCES = [
    ("astronaut", "astronaut.png"), ("cat", "chelsea.png"), ("coffee", "coffee.png"),
    ("galaxies", "hubble_deep_field.jpg"), ("tissue", "ihc.png"), ("motorcycle", "motorcycle_left.png"),
    ("retina", "retina.jpg"), ("rocket", "rocket.jpg"), ("cameraman", "camera.png"), ("grass", "grass.png"),
]


def load_sources() -> list[tuple[str, np.ndarray]]:
    """The source photographs as (H, W, 3) uint8 RGB arrays."""
    import skimage
    from skimage import io

    folder = Path(skimage.__file__).parent / "data"
    out = []
    for name, file in SOURCES:
        img = io.imread(folder / file)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        out.append((name, np.ascontiguousarray(img[:, :, :3])))
    return out


def make_image(src: np.ndarray, rng: np.random.Generator, size: int, grey: bool) -> np.ndarray:
    """One random crop of ``src`` with its longer side resized to ``size`` px: (h, w, 3) uint8."""
    import cv2

    height, width = src.shape[:2]
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))  # w / h
    # The largest window of this aspect inside the photograph, then a random area fraction.
    full_h = min(height, width / aspect)
    side = np.sqrt(rng.uniform(0.25, 1.0))
    h = max(16, int(full_h * side))
    w = max(16, min(width, int(h * aspect)))
    i = int(rng.integers(0, height - h + 1))
    j = int(rng.integers(0, width - w + 1))
    crop = src[i:i + h, j:j + w]
    scale = size / max(h, w)
    out_hw = (max(1, round(w * scale)), max(1, round(h * scale)))  # cv2 takes (w, h)
    img = cv2.resize(crop, out_hw, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    x = img.astype(np.float32) / 255.0
    if grey:
        x = x * rng.uniform(0.75, 1.0, size=3).astype(np.float32)  # colour cast
    x = np.clip(x * rng.uniform(0.85, 1.15), 0, 1) ** rng.uniform(0.85, 1.15)
    return (x * 255 + 0.5).astype(np.uint8)


def generate(root: Path, count: int = 3000, size: int = 400, quality: int = 90, seed: int = 0) -> Path:
    """Write ``count`` images (spread evenly over the 10 classes) under ``root``; returns ``root``."""
    import cv2

    root = Path(root)
    params = {"count": count, "size": size, "quality": quality, "seed": seed, "sources": [f for _, f in SOURCES]}
    done = root / "done.json"
    if done.exists() and json.loads(done.read_text()) == params:
        return root
    if root.exists():
        shutil.rmtree(root)
    sources = load_sources()
    rng = np.random.default_rng(seed)
    for k in range(count):
        cls = k % len(sources)
        name, src = sources[cls]
        img = make_image(src, rng, size, grey=SOURCES[cls][1] in ("camera.png", "grass.png"))
        path = root / name / f"{k // len(sources):05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(img[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {path}")
        path.write_bytes(data.tobytes())
    done.write_text(json.dumps(params))
    return root


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, nargs="?", default=Path("data/bench/natural"))
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--size", type=int, default=400, help="longer side in px")
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = generate(args.root, args.count, args.size, args.quality, args.seed)
    files = list(root.glob("*/*.jpg"))
    print(f"{root}: {len(files)} JPEGs, {sum(f.stat().st_size for f in files) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
