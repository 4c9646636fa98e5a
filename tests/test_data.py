import os
import warnings

import numpy as np
import pytest
from PIL import Image

from fer.data import DataWarning, load_dataset, shared_data_dir
from fer.labels import EMOTIONS, label_index
from synth import make_split, sort_rows, write_csv, write_kaggle_folders

FER2013 = shared_data_dir() / "fer2013"


@pytest.fixture()
def cache(tmp_path):
    return tmp_path / "cache"


@pytest.fixture()
def three_splits():
    return {"train": make_split(4, 1), "public_test": make_split(2, 2), "private_test": make_split(2, 3)}


def test_csv_and_folders_give_equal_arrays(tmp_path, cache, three_splits):
    from_csv = load_dataset(write_csv(tmp_path / "fer2013.csv", three_splits), cache_dir=cache)
    from_dirs = load_dataset(write_kaggle_folders(tmp_path / "kaggle", three_splits), cache_dir=cache)
    assert set(from_csv.splits) == set(from_dirs.splits) == {"train", "public_test", "private_test"}
    for name, (x, y) in three_splits.items():
        a, b = from_csv.split(name), from_dirs.split(name)
        assert a.x.dtype == b.x.dtype == np.uint8 and a.x.shape[1:] == (48, 48)
        for got in (a, b):
            gx, gy = sort_rows(got.x, got.y)
            ex, ey = sort_rows(x, y)
            np.testing.assert_array_equal(gx, ex)
            np.testing.assert_array_equal(gy, ey)


def test_all_concatenates_and_missing_split_is_clear(tmp_path, cache, three_splits):
    data = load_dataset(write_csv(tmp_path / "f.csv", three_splits), cache_dir=cache)
    assert len(data.split("all")) == sum(len(y) for _, y in three_splits.values())
    only_train = load_dataset(write_csv(tmp_path / "g.csv", {"train": three_splits["train"]}), cache_dir=cache)
    with pytest.raises(ValueError, match="public_test.*it has: train"):
        only_train.split("public_test")


def test_flat_tree_any_size_mode_and_depth(tmp_path, cache):
    root = tmp_path / "faces"
    for d in ("Anger", "HAPPINESS", "surprised"):
        (root / d).mkdir(parents=True)
    rgb = np.zeros((80, 100, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(root / "Anger" / "a.jpg", quality=95)
    Image.fromarray(np.full((60, 60), 65535, np.uint16)).save(root / "HAPPINESS" / "b.png")
    rgba = np.zeros((30, 30, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent: composited on white
    Image.fromarray(rgba, "RGBA").save(root / "surprised" / "c.png")
    Image.fromarray(rgb).convert("P").save(root / "surprised" / "d.bmp")
    Image.fromarray(rgb).save(root / "surprised" / "e.tiff")
    data = load_dataset(root, cache_dir=cache)
    split = data.split("train")
    assert data.form == "class_tree" and split.x.shape == (5, 48, 48) and split.x.dtype == np.uint8
    counts = split.class_counts()
    assert counts["angry"] == 1 and counts["happy"] == 1 and counts["surprise"] == 3
    happy = split.x[split.y == EMOTIONS.index("happy")][0]
    assert happy.min() == 255  # 16-bit white stays white
    angry = split.x[split.y == EMOTIONS.index("angry")][0]
    assert abs(int(angry.mean()) - round(200 * 0.299)) <= 3  # ITU-R 601 luma of pure red


def test_unknown_folder_is_a_clear_error_unless_skipped(tmp_path, cache):
    x, _ = make_split(1)
    for d in ("happy", "bored"):
        (tmp_path / d).mkdir()
        Image.fromarray(x[0]).save(tmp_path / d / "1.png")
    with pytest.raises(ValueError, match="'bored'.*accepted names: angry"):
        load_dataset(tmp_path, cache_dir=cache)
    data = load_dataset(tmp_path, skip_unknown=True, cache_dir=cache)
    assert data.split("train").class_counts()["happy"] == 1 and len(data.split("train")) == 1


def test_corrupt_files_are_skipped_and_counted(tmp_path, cache):
    x, _ = make_split(1)
    d = tmp_path / "sad"
    d.mkdir()
    Image.fromarray(x[0]).save(d / "good.jpg")
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.png").write_text("not an image")
    good = (d / "good.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (d / "notes.txt").write_text("ignored")
    with pytest.warns(DataWarning) as record:
        data = load_dataset(tmp_path, cache_dir=cache)
    messages = " ".join(str(w.message) for w in record)
    assert "skipped 3" in messages and "1 non-image" in messages
    assert len(data.split("train")) == 1


def test_cache_is_used_and_invalidated_by_changes(tmp_path, cache, three_splits):
    root = write_kaggle_folders(tmp_path / "k", {"train": three_splits["train"]})
    first = load_dataset(root, cache_dir=cache)
    assert "cache" not in first.meta and len(list(cache.glob("*.npz"))) == 1
    second = load_dataset(root, cache_dir=cache)
    assert second.meta.get("cache") and np.array_equal(first.split("train").x, second.split("train").x)
    victim = next((root / "train" / "happy").iterdir())
    Image.fromarray(np.full((48, 48), 7, np.uint8)).save(victim)
    os.utime(victim, ns=(1, 1))
    third = load_dataset(root, cache_dir=cache)
    assert "cache" not in third.meta
    assert (third.split("train").x == 7).all(axis=(1, 2)).sum() == 1


def test_csv_problems(tmp_path, cache):
    bad_cols = tmp_path / "a.csv"
    bad_cols.write_text("label,data\n0,1 2 3\n")
    with pytest.raises(ValueError, match="lacks column.*emotion, pixels"):
        load_dataset(bad_cols, cache_dir=cache)
    good = " ".join(["10"] * 2304)
    rows = tmp_path / "b.csv"
    rows.write_text(f"emotion,pixels,Usage\n3,{good},Training\n1,1 2 3,Training\n2,{good[:-2]}x,Training\n")
    with pytest.warns(DataWarning, match="skipped 2"):
        data = load_dataset(rows, cache_dir=cache)
    assert len(data.split("train")) == 1 and int(data.split("train").y[0]) == 3
    unknown = tmp_path / "c.csv"
    unknown.write_text(f"emotion,pixels,Usage\n3,{good},Training\n9,{good},Training\n")
    with pytest.raises(ValueError, match="line 3: unknown emotion '9'"):
        load_dataset(unknown, cache_dir=cache)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_dataset(unknown, skip_unknown=True, cache_dir=cache).split("train")) == 1


def test_bad_paths(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="not a .csv"):
        load_dataset(tmp_path / "x.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        load_dataset(tmp_path / "empty")


def test_label_aliases():
    assert label_index("Anger") == 0 and label_index("happiness") == 3 and label_index("Surprised") == 5
    assert label_index("SADNESS") == 4 and label_index("6") == 6 and label_index("bored") is None


@pytest.mark.skipif(not FER2013.is_dir(), reason="FER2013 image folders not present beside the checkout")
def test_real_fer2013_counts_and_cached_reload(tmp_path):
    data = load_dataset(FER2013, cache_dir=tmp_path)
    assert len(data.split("train")) == 28709 and len(data.split("public_test")) == 3589
    assert data.split("train").class_counts()["disgust"] == 436
    again = load_dataset(FER2013, cache_dir=tmp_path)
    assert again.meta.get("cache")
    np.testing.assert_array_equal(again.split("public_test").x, data.split("public_test").x)


def test_require_splits_names_the_missing_ones(tmp_path, cache, three_splits):
    from fer.data import require_splits

    data = load_dataset(write_kaggle_folders(tmp_path / "k", {"train": three_splits["train"]}), cache_dir=cache)
    assert require_splits(data, ("train",)) is data
    with pytest.raises(ValueError, match="has no public_test split \\(it has train\\)"):
        require_splits(data)
