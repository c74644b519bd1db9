"""Dataset selection (COCO and folders) and stable sharding."""
from __future__ import annotations

from icm_privacy.datasets import DEMO_PHOTOS, list_images, shard_of, unread_files
from icm_privacy.datasets import DatasetError

import pytest


def test_shard_of_is_stable_and_spreads_images():
    ids = [f"{i:012d}" for i in range(400)]
    shards = [shard_of(i, 8) for i in ids]
    assert shards == [shard_of(i, 8) for i in ids]  # no dependence on other images or order
    counts = [shards.count(s) for s in range(8)]
    assert min(counts) > 25, counts


def test_coco_selection_options(coco_persons):
    base = {"kind": "coco", "images": str(coco_persons / "images"), "annotations": str(coco_persons / "instances.json")}
    everything = list_images(base)
    assert len(everything) == 50 and list(everything) == sorted(everything)
    assert list(list_images({**base, "first_n": 3})) == list(everything)[:3]
    assert list(list_images({**base, "image_ids": [139, "000000000790"]})) == ["000000000139", "000000000790"]
    assert len(list_images({**base, "only_with_persons": True})) == 50  # every image of this set shows people
    assert all(path.is_file() for path in everything.values())


def test_folder_dataset_lists_images_only(tmp_path):
    (tmp_path / "b.jpg").write_bytes(b"")
    (tmp_path / "a.PNG").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "clip.gif").write_bytes(b"GIF89a")
    (tmp_path / "more").mkdir()
    dataset = {"kind": "folder", "images": str(tmp_path)}
    assert list(list_images(dataset)) == ["a", "b"]
    # everything else is listed with the reason, never dropped without a word
    unread = unread_files(dataset)
    assert sorted(unread) == [str(tmp_path / name) for name in ("clip.gif", "more", "notes.txt")]
    assert unread[str(tmp_path / "clip.gif")].startswith("file type '.gif' is not read (read: .bmp, .jpeg")
    assert unread[str(tmp_path / "more")] == "a folder: subfolders are not read"
    assert unread_files({"kind": "demo"}) == {}
    with pytest.raises(DatasetError, match="dataset.images: .*missing is not a folder"):
        list_images({"kind": "folder", "images": str(tmp_path / "missing")})


def test_demo_lists_identity_labelled_photos():
    assert list(list_images({"kind": "demo"})) == sorted(DEMO_PHOTOS)
    assert {DEMO_PHOTOS[i].identity for i in ("obama", "obama2", "obama3")} == {"obama"}
