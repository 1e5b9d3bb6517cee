"""Image classification data: product photos listed in split files, or one folder per class.

Two layouts are read:

* list files (the Grocery Store layout): ``ROOT/{split}.txt`` lines ``relative/path.jpg, fine_id, coarse_id``
  and an optional ``ROOT/classes.csv`` naming the ids;
* class folders: ``ROOT/{split}/<class name>/*.jpg`` (class names sorted).

Images are decoded once, resized to ``size`` x ``size`` and kept as uint8 (in memory, filled lazily
row by row; with ``cache_dir`` also as a ``.npy`` file reused by later runs). ``inputs`` returns
float32 NCHW arrays scaled per ``preprocessing``:

* ``"tf"``: RGB 0-255 mapped by ``(x - 127) / 128`` (TF-trained EfficientNet-Lite);
* ``"imagenet"``: ``(x / 255 - mean) / std`` with the ImageNet mean/std (torchvision-trained models).

    ds = load_image_list("grocery-store", "val", label="fine", size=224, preprocessing="tf")
    (image,) = ds.inputs([0, 1])        # float32 [2, 3, 224, 224]
"""
from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from edge_kd.data.base import Dataset, as_indices
from edge_kd.errors import InputError

Preprocessing = Literal["tf", "imagenet"]
PREPROCESSINGS = ("tf", "imagenet")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def scale_pixels(pixels: np.ndarray, preprocessing: str) -> np.ndarray:
    """uint8 NHWC RGB -> float32 NCHW per the named preprocessing."""
    x = pixels.astype(np.float32)
    if preprocessing == "tf":
        x = (x - 127.0) / 128.0
    elif preprocessing == "imagenet":
        x = (x / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    else:
        raise InputError(f"unknown image preprocessing {preprocessing!r}; known: {', '.join(PREPROCESSINGS)}")
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def decode_image(path: Path, size: int) -> np.ndarray:
    """Decode one image file to uint8 RGB [size, size, 3] (bilinear resize, antialiased)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(f"{path}: image file does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: cannot decode image ({exc})") from None
    except Image.DecompressionBombError as exc:  # a ValueError subclass, not an OSError
        raise InputError(f"{path}: refused: {exc}") from None


class _PixelStore:
    """Decoded pixels of a list of files, shared by a data set and its subsets."""

    def __init__(self, paths: list[Path], size: int, cache_dir: Path | None):
        self.paths = paths
        self.size = size
        self.cache_file = None
        self.key = self._key()
        if cache_dir is not None:
            self.cache_file = Path(cache_dir) / f"images-{self.key}.npy"
        if self.cache_file is not None and self.cache_file.is_file():
            self.pixels = np.load(self.cache_file, mmap_mode="r")
            self.loaded = np.ones(len(paths), dtype=bool)
        else:
            # np.zeros maps pages lazily, so an unread row costs no memory.
            self.pixels = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
            self.loaded = np.zeros(len(paths), dtype=bool)

    def _key(self) -> str:
        """A hash of the files' names and bytes (about 1 s for 5,000 photos), not of their paths and
        modification times: a fresh copy of the same photos (a CI checkout, another folder) keeps its
        decoded pixels and, through the data set's fingerprint, its fitted teacher, which is an hour of
        CPU for an end-to-end image teacher."""
        h = hashlib.sha256(f"size={self.size}".encode())
        for p in self.paths:
            try:
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            except OSError:
                digest = "missing"
            h.update(f"{p.name}|{digest}\n".encode())
        return h.hexdigest()[:16]

    def get(self, rows: np.ndarray) -> np.ndarray:
        todo = rows[~self.loaded[rows]]
        for r in np.unique(todo):
            self.pixels[r] = decode_image(self.paths[r], self.size)
            self.loaded[r] = True
        if todo.size and self.cache_file is not None and self.loaded.all():
            self._write_cache()
        return self.pixels[rows]

    def _write_cache(self) -> None:
        from edge_kd.pipeline.atomic import atomic_path

        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.cache_file) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, self.pixels)


class ImageDataset(Dataset):
    """Images with integer labels; ``inputs`` returns ``(image,)`` float32 [N, 3, size, size]."""

    input_names = ("image",)

    def __init__(self, store: _PixelStore, rows: np.ndarray, labels: np.ndarray, label_names: Sequence[str], *,
                 preprocessing: str = "tf", source: str = ""):
        if preprocessing not in PREPROCESSINGS:
            raise InputError(f"unknown image preprocessing {preprocessing!r}; known: {', '.join(PREPROCESSINGS)}")
        self._store = store
        self._rows = np.asarray(rows, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.label_names = list(label_names)
        self.preprocessing = preprocessing
        self.source = source
        self.task = "binary" if len(self.label_names) == 2 else "classification"

    @property
    def size(self) -> int:
        return self._store.size

    @property
    def paths(self) -> list[Path]:
        return [self._store.paths[r] for r in self._rows]

    def pixels(self, indices=None) -> np.ndarray:
        """uint8 NHWC RGB pixels (before scaling), e.g. for augmentation or display."""
        return self._store.get(self._rows[as_indices(indices, len(self))])

    def inputs(self, indices=None) -> tuple[np.ndarray, ...]:
        return (scale_pixels(self.pixels(indices), self.preprocessing),)

    def preload(self) -> "ImageDataset":
        """Decode every image now (and write the disk cache when one is configured)."""
        self.pixels()
        return self

    def with_preprocessing(self, preprocessing: str) -> "ImageDataset":
        """The same images scaled another way (pixels are shared, not decoded again)."""
        return ImageDataset(self._store, self._rows, self.labels, self.label_names,
                            preprocessing=preprocessing, source=self.source)

    def _take(self, idx: np.ndarray) -> "ImageDataset":
        return ImageDataset(self._store, self._rows[idx], self.labels[idx], self.label_names,
                            preprocessing=self.preprocessing, source=self.source)

    def _update_fingerprint(self, h: Any) -> None:
        h.update(f"{self._store.key}|{self.preprocessing}|".encode())
        h.update(self._rows.tobytes())

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "size": self.size, "preprocessing": self.preprocessing}


def _read_class_names(root: Path, label: str) -> dict[int, str]:
    """Id -> name from ``classes.csv`` (Grocery Store columns), or {} when there is none."""
    path = root / "classes.csv"
    if not path.is_file():
        return {}
    id_col, name_col = (("Class ID (int)", "Class Name (str)") if label == "fine"
                        else ("Coarse Class ID (int)", "Coarse Class Name (str)"))
    names: dict[int, str] = {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            if id_col not in row or name_col not in row:
                raise InputError(f"{path}: expected columns {id_col!r} and {name_col!r}; "
                                 f"columns are: {', '.join(row)}")
            names[int(row[id_col])] = row[name_col]
    return names


def _read_list_file(root: Path, split: str, label: str) -> tuple[list[Path], list[int]]:
    list_file = root / f"{split}.txt"
    column = {"fine": 1, "coarse": 2}[label]
    paths, ids = [], []
    for n, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 2:
            raise InputError(f"{list_file}: line {n}: expected 'path, class_id[, coarse_id]', got {line!r}")
        if len(parts) <= column:
            raise InputError(f"{list_file}: line {n}: no {label} label column (label='coarse' needs a third field)")
        try:
            ids.append(int(parts[column]))
        except ValueError:
            raise InputError(f"{list_file}: line {n}: class id {parts[column]!r} is not an integer") from None
        paths.append(root / parts[0])
    return paths, ids


def load_image_list(root: str | os.PathLike[str], split: str = "train", *, label: Literal["fine", "coarse"] = "fine",
                    size: int = 224, preprocessing: Preprocessing = "tf",
                    cache_dir: str | os.PathLike[str] | None = None,
                    label_names: Sequence[str] | None = None) -> ImageDataset:
    """Load one split of an image data set (list files or class folders, see the module doc).

    >>> train = load_image_list("/data/grocery-store", "train", label="fine", size=224, preprocessing="tf")
    >>> train.num_classes, len(train)      # 81, 2640

    ``label_names`` fixes the class list (another split's): class ids index it (list files) or
    folder names are looked up in it (class folders).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: image data folder does not exist")
    if label not in ("fine", "coarse"):
        raise InputError(f"image label must be 'fine' or 'coarse', got {label!r}")
    if size < 8:
        raise InputError(f"image size must be >= 8, got {size}")
    if preprocessing not in PREPROCESSINGS:
        raise InputError(f"unknown image preprocessing {preprocessing!r}; known: {', '.join(PREPROCESSINGS)}")
    if (root / f"{split}.txt").is_file():
        paths, ids = _read_list_file(root, split, label)
        names_by_id = _read_class_names(root, label)
        if not paths:
            raise InputError(f"{root / f'{split}.txt'}: the split is empty")
        top = max(max(ids), max(names_by_id, default=-1))
        if min(ids) < 0:
            raise InputError(f"{root / f'{split}.txt'}: negative class id {min(ids)}")
        if label_names is not None:
            if top >= len(label_names):
                raise InputError(f"{root / f'{split}.txt'}: class id {top} is beyond the {len(label_names)} known classes")
            label_names = list(label_names)
        else:
            label_names = [names_by_id.get(i, str(i)) for i in range(top + 1)]
        labels = np.asarray(ids, dtype=np.int64)
    elif (root / split).is_dir():
        class_dirs = sorted(d for d in (root / split).iterdir() if d.is_dir())
        if not class_dirs:
            raise InputError(f"{root / split}: expected one sub-folder per class, found none")
        if label_names is None:
            label_names = [d.name for d in class_dirs]
        else:
            label_names = list(label_names)
            unknown = [d.name for d in class_dirs if d.name not in label_names]
            if unknown:
                raise InputError(f"{root / split}: class folder {unknown[0]!r} is not one of the known classes")
        paths, codes = [], []
        for d in class_dirs:
            code = label_names.index(d.name)
            for f in sorted(d.iterdir()):
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    paths.append(f)
                    codes.append(code)
        if not paths:
            raise InputError(f"{root / split}: the split is empty (no {', '.join(IMAGE_SUFFIXES)} files)")
        labels = np.asarray(codes, dtype=np.int64)
    else:
        splits = sorted({p.stem for p in root.glob("*.txt")} | {d.name for d in root.iterdir() if d.is_dir()})
        raise InputError(f"{root}: no split {split!r} (neither {split}.txt nor a {split}/ folder); "
                         f"found: {', '.join(splits) or 'nothing'}")
    missing = [p for p in paths[:5] if not p.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: image listed in split {split!r} does not exist")
    if len(label_names) < 2:
        raise InputError(f"{root}: split {split!r} has a single class; need at least two")
    store = _PixelStore(list(paths), size, Path(cache_dir) if cache_dir is not None else None)
    return ImageDataset(store, np.arange(len(paths)), labels, label_names, preprocessing=preprocessing,
                        source=f"{root}:{split}")
