"""Face detection, alignment and cropping on real photographs (tests/data) and scenes made from them."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

import scenes
from fer.faces import (
    FER2013_LANDMARKS,
    LARGEST_INPUT,
    PHOTO_MIN_FACE,
    Face,
    crop_faces,
    detect_faces,
    detector_sizes,
    face_transform,
)
from fer.images import load_bgr, to_bgr


def eye_angle(face: Face) -> float:
    (lx, ly), (rx, ry) = face.eyes
    return float(np.degrees(np.arctan2(ry - ly, rx - lx)))


@pytest.mark.parametrize("name", list(scenes.FACES))
def test_one_face_per_portrait_with_box_eyes_and_score(name):
    faces = detect_faces(scenes.load(name))
    assert len(faces) == 1
    face = faces[0]
    assert scenes.iou(face.box, scenes.FACES[name]) >= 0.5
    assert 0.5 <= face.score <= 1.0
    x, y, w, h = face.box
    (lx, ly), (rx, ry) = face.eyes
    assert x <= lx < rx <= x + w and y <= ly <= y + h / 2 + 5 and y <= ry <= y + h / 2 + 5
    assert len(face.landmarks) == 5


NO_FACE = scenes.negatives()[:4] + [scenes.Scene("blank", np.full((240, 320, 3), 128, np.uint8), []),
                                     scenes.Scene("tiny", np.zeros((8, 8, 3), np.uint8), [])]
HARD = [scenes.portrait("astronaut.jpg", 40), scenes.portrait("grace_hopper.jpg", 120, light=0.25),
        scenes.portrait("camera.jpg", 160, mirror=True), scenes.portrait("astronaut.jpg", 300),
        scenes.portrait("grace_hopper.jpg", 60, 15, light=0.4)]


@pytest.mark.parametrize("scene", NO_FACE, ids=lambda s: s.name)
def test_no_face_in_face_free_images(scene):
    assert detect_faces(scene.image) == []


@pytest.mark.parametrize("scene", [scenes.group(1), scenes.group(2), scenes.grid(60, 5, 2), scenes.grid(40, 5, 2)],
                         ids=lambda s: s.name)
def test_many_faces_all_found_left_to_right(scene):
    faces = detect_faces(scene.image)
    found, false = scenes.match([f.box for f in faces], scene.boxes)
    assert (found, false) == (len(scene.boxes), 0)
    xs = [f.box[0] for f in faces]
    assert xs == sorted(xs)


@pytest.mark.parametrize("scene", HARD, ids=lambda s: s.name)
def test_hard_single_faces_small_dim_turned_large(scene):
    faces = detect_faces(scene.image)
    assert scenes.match([f.box for f in faces], scene.boxes) == (1, 0)


def test_face_filling_the_whole_image_is_found():
    x, y, w, h = scenes.FACES["astronaut.jpg"]
    tight = scenes.load("astronaut.jpg")[y : y + h, x : x + w]
    faces = detect_faces(cv2.resize(tight, (48, 64)))
    assert len(faces) == 1 and faces[0].box[2] >= 30


@pytest.mark.parametrize("angle", [30, -30])
def test_tilted_face_eyes_follow_tilt_and_crop_levels_them(angle):
    scene = scenes.portrait("astronaut.jpg", 160, angle)
    (face,) = detect_faces(scene.image)
    # the photo's own eye line is tilted ~+4.7 degrees; rotating counter-clockwise lowers it
    assert eye_angle(face) == pytest.approx(4.7 - angle, abs=5)
    crop = crop_faces(scene.image, [face])[0]
    again = _landmarks_in_crop(crop)
    assert abs(eye_angle(again)) < 4


def _landmarks_in_crop(crop: np.ndarray) -> Face:
    """Detect the face again inside a 48x48 crop (4x up, grey border) and return it in 48 px units."""
    big = cv2.copyMakeBorder(cv2.resize(crop, (192, 192), interpolation=cv2.INTER_CUBIC), 96, 96, 96, 96,
                             cv2.BORDER_CONSTANT, value=128)
    (f,) = detect_faces(big)
    pts = tuple(((x - 96) / 4, (y - 96) / 4) for x, y in f.landmarks)
    return Face(f.box, f.score, (pts[0], pts[1]), pts)


@pytest.mark.parametrize("name", ["astronaut.jpg", "grace_hopper.jpg"])
def test_crop_puts_landmarks_where_fer2013_has_them(name):
    image = scenes.load(name)
    crop = crop_faces(image, detect_faces(image))[0]
    again = np.array(_landmarks_in_crop(crop).landmarks)
    assert np.abs(again - FER2013_LANDMARKS).mean() < 2.0  # pixels of the 48x48 frame


def test_crop_of_a_shrunk_photo_matches_crop_of_the_original():
    image = scenes.load("grace_hopper.jpg")
    small = cv2.resize(image, (256, 300), interpolation=cv2.INTER_AREA)
    a = crop_faces(image, detect_faces(image))[0].astype(float)
    b = crop_faces(small, detect_faces(small))[0].astype(float)
    assert np.abs(a - b).mean() < 12
    assert a.std() > 20  # a face, not a flat patch


def test_crops_are_uint8_48x48_and_empty_list_gives_empty_batch():
    image = scenes.group(1).image
    faces = detect_faces(image)
    crops = crop_faces(image, faces)
    assert crops.shape == (len(faces), 48, 48) and crops.dtype == np.uint8
    assert crop_faces(image, []).shape == (0, 48, 48)


def test_face_cut_by_the_image_edge_is_cropped_with_replicated_border():
    image = scenes.load("astronaut.jpg")[:, 220:]  # the left half of the face is cut off
    faces = detect_faces(image)
    crops = crop_faces(image, faces)
    assert all(0 <= f.box[0] and f.box[0] + f.box[2] <= image.shape[1] for f in faces)
    assert crops.shape[1:] == (48, 48)


def test_box_only_transform_uses_the_detector_box():
    face = Face((100, 50, 80, 93), 0.9)
    m = face_transform(face)
    centre = m @ np.array([140 - 0.5, 96.5 - 0.5, 1.0])
    assert centre == pytest.approx([24.25 - 0.5, 24.45 - 0.5], abs=0.6)


# ---------------------------------------------------------------- input forms

def _astronaut_box(image, **kw) -> tuple[int, int, int, int]:
    (face,) = detect_faces(image, **kw)
    return face.box


@pytest.mark.parametrize("form", ["gray", "gray1", "bgra", "rgb", "uint16", "float01", "rgba_transparent_bg"])
def test_input_forms_give_the_same_face(form):
    bgr = scenes.load("astronaut.jpg")
    ref = _astronaut_box(bgr)
    if form == "gray":
        image, kw = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), {}
    elif form == "gray1":
        image, kw = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[..., None], {}
    elif form == "bgra":
        image, kw = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), {}
    elif form == "rgb":
        image, kw = bgr[..., ::-1], {"channels": "rgb"}
    elif form == "uint16":
        image, kw = bgr.astype(np.uint16) * 257, {}
    elif form == "float01":
        image, kw = bgr.astype(np.float32) / 255.0, {}
    else:
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
        image[:40, :, 3] = 0  # a transparent strip at the top: composited on white
        kw = {}
    assert scenes.iou(_astronaut_box(image, **kw), ref) > 0.85


def test_rgb_channel_order_is_converted():
    bgr = scenes.load("astronaut.jpg")
    assert np.array_equal(to_bgr(bgr[..., ::-1], "rgb"), bgr)
    assert to_bgr(np.full((4, 4), 65535, np.uint16)).max() == 255


@pytest.mark.parametrize("bad, message", [
    (np.zeros((10, 10, 2), np.uint8), "expected (h, w) gray"),
    (np.zeros((0, 10, 3), np.uint8), "zero width or height"),
    (np.full((4, 4), np.nan), "NaN"),
    (np.full((4, 4), -5, np.int32), "uint8"),
])
def test_bad_arrays_are_refused_with_a_clear_message(bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        detect_faces(bad)


def test_bad_settings_are_refused():
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="min_score"):
        detect_faces(image, min_score=0)
    with pytest.raises(ValueError, match="unknown face detector"):
        detect_faces(image, detector="nope")
    with pytest.raises(ValueError, match="channels"):
        detect_faces(image, channels="hsv")


def test_the_finer_pass_is_added_only_where_the_first_would_miss_the_smallest_face():
    assert detector_sizes(480, 640, 320, PHOTO_MIN_FACE) == (320,)  # 40 px of 640 is 20 px of 320: found
    assert detector_sizes(3000, 4000, 320, 40) == (320, LARGEST_INPUT)  # a 12-megapixel photo: capped
    assert detector_sizes(1500, 2000, 320, 40) == (320, 1216)  # 40 px faces at 24 px of the working image
    assert detector_sizes(1500, 2000, 640, 80) == (640,)  # the first pass already sees 80 px faces
    assert detector_sizes(3000, 4000, 320, 0) == (320,)  # 0: one pass
    with pytest.raises(ValueError, match="min_face"):
        detector_sizes(480, 640, 320, 4)
    with pytest.raises(ValueError, match="min_face"):
        detect_faces(np.zeros((64, 64, 3), np.uint8), min_face=-1)


@pytest.fixture(scope="module")
def big_group():
    """A 12-megapixel photo (4000x3000): 20 faces 80 px wide on its left, one 1000 px wide on its right."""
    image, names = scenes.background((4000, 3000)), list(scenes.FACES)
    small = [scenes.paste(image, names[i % 3], (200 + 400 * (i % 4), 400 + 500 * (i // 4)), 80, margin=0.45)
             for i in range(20)]
    big = scenes.paste(image, "grace_hopper.jpg", (3000, 1500), 1000, margin=0.3)
    return image, small, big


def test_small_faces_in_a_big_photo_are_found_by_the_finer_pass(big_group):
    image, small, big = big_group
    one_pass = detect_faces(image, min_face=0)  # 320 px: 80 px faces become 6 px
    found, _ = scenes.match([f.box for f in one_pass], small)
    assert found == 0 and scenes.match([f.box for f in one_pass], [big])[0] == 1
    faces = detect_faces(image)  # the default looks for faces down to PHOTO_MIN_FACE
    found_small, _ = scenes.match([f.box for f in faces], small)
    found_big, _ = scenes.match([f.box for f in faces], [big])
    assert found_small >= 18 and found_big == 1  # both passes' faces, and each face once:
    assert len(faces) == found_small + found_big
    xs = [f.box[0] for f in faces]
    assert xs == sorted(xs)


def test_haar_baseline_finds_the_frontal_face():
    faces = detect_faces(scenes.load("grace_hopper.jpg"), detector="haar")
    assert scenes.match([f.box for f in faces], [scenes.FACES["grace_hopper.jpg"]]) == (1, 0)


# ---------------------------------------------------------------- files and EXIF

def exif_rotated_jpeg(bgr: np.ndarray) -> bytes:
    """JPEG bytes whose pixels are stored turned 90 degrees counter-clockwise, with EXIF
    orientation 6 ("rotate 90 clockwise to display"): viewers show the original upright."""
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(bgr[..., ::-1], 1)))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def test_exif_orientation_is_applied_and_boxes_fit_the_upright_image():
    bgr = scenes.load("grace_hopper.jpg")  # 512 wide, 600 high
    data = exif_rotated_jpeg(bgr)
    assert Image.open(io.BytesIO(data)).size == (600, 512)  # stored sideways
    upright = load_bgr(data)
    assert upright.shape == bgr.shape
    assert np.abs(upright.astype(int) - bgr).mean() < 4
    (face,) = detect_faces(upright)
    assert scenes.iou(face.box, scenes.FACES["grace_hopper.jpg"]) >= 0.5


def test_16_bit_png_file(tmp_path):
    gray = cv2.cvtColor(scenes.load("astronaut.jpg"), cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
    path = tmp_path / "deep.png"
    Image.fromarray(gray).save(path)
    (face,) = detect_faces(load_bgr(path))
    assert scenes.iou(face.box, scenes.FACES["astronaut.jpg"]) >= 0.5
