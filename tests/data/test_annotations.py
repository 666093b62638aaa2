"""GAWWN's JSONL annotations: converters on tiny CUB/MPII fixtures, validation reports, the data source."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_module
from tfcoord.data import make_dataset
from tfcoord.data.gawwn.annotations import FORMAT, read_annotations, write_annotations
from tfcoord.data.gawwn.captions import decode
from tfcoord.data.gawwn.converters import convert_cub, convert_mpii
from tfcoord.data.gawwn.parts import CUB_PARTS, MPII_JOINTS
from tfcoord.errors import UserError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gawwn"
CUB = FIXTURES / "CUB_200_2011"
MPII = FIXTURES / "mpii"


def records(path):
    lines = Path(path).read_text().splitlines()
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:]]


def cub_keypoints(width, height, hidden=()):
    return [[0.0, 0.0, 0] if k in hidden else
            [pytest.approx((4.0 + k) / width), pytest.approx((3.0 + k / 2) / height), 1] for k in range(1, 16)]


def test_cub_converter_writes_the_expected_records(tmp_path):
    result = convert_cub(CUB, tmp_path / "cub.jsonl", captions=FIXTURES / "text_c10")
    header, rows = records(tmp_path / "cub.jsonl")
    assert header["format"] == FORMAT and header["parts"] == list(CUB_PARTS)
    assert [r["image"] for r in rows] == ["001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg",
                                          "002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg"]
    first, second = rows
    assert first["class"] == 0 and first["class_name"] == "001.Black_footed_Albatross"
    assert first["bbox"] == pytest.approx([0.1, 0.1, 0.5, 0.5])  # 4 3 20 15 px in a 40 x 30 image
    assert first["keypoints"] == cub_keypoints(40, 30)
    assert first["captions"] == ["this bird number 1 has a white belly.", "the bird has long wings and a dark back."]
    assert second["class"] == 1 and second["bbox"] == pytest.approx([0.2, 0.2, 0.6, 0.6])
    assert second["keypoints"] == cub_keypoints(50, 40, hidden=(11, 12, 13))
    problems = "\n".join(result.problems)
    assert result.records == 2 and len(result.problems) == 6, problems
    for expected in (f"{CUB}/bounding_boxes.txt:7: non-numeric field",              # malformed row
                     f"{CUB}/bounding_boxes.txt:3: box [30.0, 3.0, 20.0, 15.0] of image 3 lies outside",
                     f"{CUB}/images.txt:4: image file",                              # missing image
                     f"{CUB}/bounding_boxes.txt:5: visible part beak of image 5 at (95, 12) lies outside",
                     f"{CUB}/images.txt:6: caption file",                            # missing captions
                     f"{CUB}/images.txt:7: image 7 has no row in bounding_boxes.txt"):
        assert expected in problems, (expected, problems)
    # What the converter writes is what the reader accepts.
    assert len(read_annotations(tmp_path / "cub.jsonl").records) == 2


def test_cub_split_embeddings_and_strict(tmp_path):
    result = convert_cub(CUB, tmp_path / "test.jsonl", captions=FIXTURES / "text_c10", split="test")
    assert result.records == 1 and records(tmp_path / "test.jsonl")[1][0]["class"] == 1
    convert_cub(CUB, tmp_path / "emb.jsonl", embeddings=FIXTURES / "embeddings_c10")
    header, rows = records(tmp_path / "emb.jsonl")
    assert header["embedding_dim"] == 8 and len(rows) == 2 and "captions" not in rows[0]
    assert np.load(tmp_path / rows[0]["text_embeddings"]).shape == (2, 8)
    with pytest.raises(UserError, match=r"bounding_boxes.txt:7: non-numeric field .*--strict"):
        convert_cub(CUB, tmp_path / "strict.jsonl", captions=FIXTURES / "text_c10", strict=True)
    with pytest.raises(UserError, match="pass the CUB_200_2011 folder"):
        convert_cub(tmp_path / "nowhere", tmp_path / "x.jsonl", captions=FIXTURES / "text_c10")


@pytest.mark.parametrize("annotations", ["mpii_human_pose_v1_u12_1.mat", "mpii_annotations.json"])
def test_mpii_converter_keeps_single_people_with_captions(tmp_path, annotations):
    result = convert_mpii(MPII / annotations, MPII / "images", MPII / "mhp_captions.tsv", tmp_path / "mhp.jsonl")
    header, rows = records(tmp_path / "mhp.jsonl")
    assert header["parts"] == list(MPII_JOINTS) and len(rows) == 1 == result.records
    (row,) = rows
    assert row["image"] == "000001163.jpg" and row["class_name"] in ("bicycling, mountain", "unknown activity")
    assert row["captions"] == ["a man rides a mountain bike down a dirt trail.", "the cyclist wears a red helmet."]
    # joints j at (10 + 2j, 20 + 3j) 0-based pixels in a 60 x 80 image; ankles (0 and 5) not visible
    for j, (x, y, visible) in enumerate(row["keypoints"]):
        if j in (0, 5):
            assert (x, y, visible) == (0.0, 0.0, 0)
        else:
            assert (x, y, visible) == (pytest.approx((10 + 2 * j) / 60), pytest.approx((20 + 3 * j) / 80), 1)
    x, y, w, h = row["bbox"]
    assert 0 <= x <= 10 / 60 and 0 <= y <= 20 / 80 and x + w >= 40 / 60 and y + h >= 65 / 80
    problems = "\n".join(result.problems)
    assert f"{MPII}/mhp_captions.tsv:4: expected '<image name><TAB><caption>'" in problems
    if annotations.endswith(".mat"):
        assert "annolist(3): image file" in problems  # missing image
        assert "annolist(4): visible part head_top of image 000004444.jpg at (149, 47) lies outside" in problems
        assert "annolist(5): image 000005555.jpg has no caption" in problems
    else:
        assert "mpii_annotations.json:[3]: expected" in problems  # malformed entry


def test_convert_cli(tmp_path):
    result = run_module("tfcoord.data.convert_annotations", "cub", "--root", CUB, "--captions", FIXTURES / "text_c10",
                        "--out", tmp_path / "cub.jsonl")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "wrote 2 records" in result.stdout and "bounding_boxes.txt:3: box" in result.stderr
    refused = run_module("tfcoord.data.convert_annotations", "cub", "--root", CUB, "--captions",
                         FIXTURES / "text_c10", "--out", tmp_path / "strict.jsonl", "--strict")
    last = refused.stderr.strip().splitlines()[-1]  # TensorFlow may log lines before it
    assert refused.returncode == 2 and last.startswith("error: ") and "bounding_boxes.txt:7" in last, last


def write_file(path, header, lines):
    path.write_text("\n".join([json.dumps(header)] + lines) + "\n")
    return path


@pytest.fixture
def image_dir(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(CUB / "images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg", folder / "a.jpg")
    return folder


def test_reader_reports_each_bad_record_with_file_and_line(tmp_path, image_dir):
    header = {"format": FORMAT, "version": 1, "parts": ["beak", "left_eye", "right_eye"], "images": "images"}
    good = {"image": "a.jpg", "class": 3, "captions": ["a bird."], "bbox": [0.1, 0.2, 0.5, 0.5],
            "keypoints": [[0.5, 0.5, 1], [0.2, 0.3, 0], [0.9, 1.0, 1]]}
    bad = [
        "{not json",
        json.dumps({**good, "image": "missing.jpg"}),
        json.dumps({**good, "bbox": [0.6, 0.2, 0.5, 0.5]}),              # x + w > 1
        json.dumps({**good, "bbox": [0.1, 0.2, 0.0, 0.5]}),              # zero width
        json.dumps({**good, "keypoints": [[1.5, 0.5, 1], [0, 0, 0], [0, 0, 0]]}),  # visible beak outside
        json.dumps({**good, "keypoints": [[0.5, 0.5, 1]]}),              # wrong count
        json.dumps({**good, "class": -1}),
        json.dumps({key: v for key, v in good.items() if key != "captions"}),
        json.dumps({**good, "keypoints": [[0.5, 0.5, 2], [0, 0, 0], [0, 0, 0]]}),
        json.dumps([1, 2]),
    ]
    path = write_file(tmp_path / "a.jsonl", header, [json.dumps(good)] + bad)
    seen = []
    annotations = read_annotations(path, report=seen.append)
    assert len(annotations.records) == 1
    assert [int(line.split(":")[1]) for line in seen] == list(range(3, 3 + len(bad)))
    assert all(line.startswith(f"{path}:") and line.endswith("record skipped") for line in seen)
    for fragment in ("not valid JSON", "does not exist", "lies outside the image", "zero or negative size",
                     "visible keypoint beak at (1.5, 0.5) lies outside", "must list 3", "'class' must be",
                     "needs 'captions' or 'text_embeddings'", "visibility must be 0 or 1", "JSON object"):
        assert any(fragment in line for line in seen), fragment
    record = annotations.records[0]
    assert record["keypoints"][1] == [0.0, 0.0, 0.0]  # invisible parts are zeros
    with pytest.raises(UserError, match="no valid record"):
        read_annotations(write_file(tmp_path / "b.jsonl", header, bad))
    with pytest.raises(UserError, match="first line must be the header"):
        read_annotations(write_file(tmp_path / "c.jsonl", {"images": "images"}, [json.dumps(good)]))
    with pytest.raises(UserError, match="does not exist"):
        read_annotations(tmp_path / "none.jsonl")


def test_annotations_source_feeds_make_dataset(tmp_path, image_dir):
    header = {"format": FORMAT, "version": 1, "parts": list(CUB_PARTS), "images": "images"}
    keypoints = [[0.0, 0.0, 0]] * 15
    keypoints[CUB_PARTS.index("left_eye")] = [0.25, 0.5, 1]
    rows = [{"image": "a.jpg", "class": 7, "captions": ["first caption.", "second one."], "bbox": [0.1, 0.2, 0.5, 0.6],
             "keypoints": keypoints}]
    write_annotations(tmp_path / "d.jsonl", header, rows)
    data = make_dataset(f"annotations:{tmp_path / 'd.jsonl'}", image_size=(30, 40), batch_size=1, seed=0,
                        training=False)
    batch = next(iter(data))
    assert batch["image"].shape == (1, 30, 40, 3) and batch["captions"].shape == (1, 2, 201)
    assert decode(batch["captions"][0][1]) == "second one." and int(batch["num_captions"][0]) == 2
    assert int(batch["label"][0]) == 7
    np.testing.assert_allclose(batch["bbox"][0], [0.2, 0.1, 0.8, 0.6], atol=1e-6)  # (ymin, xmin, ymax, xmax)
    np.testing.assert_allclose(batch["keypoints"][0][CUB_PARTS.index("left_eye")], [0.25, 0.5, 1.0], atol=1e-6)
    # Training flips half the images: a flipped left eye becomes the right eye at 1 - x.
    flipped = next(iter(make_dataset(f"annotations:{tmp_path / 'd.jsonl'}", image_size=(30, 40), batch_size=8,
                                     seed=0, training=True)))
    for i, flip in enumerate(np.asarray(flipped["flipped"])):
        eye = np.asarray(flipped["keypoints"][i])[CUB_PARTS.index("right_eye" if flip else "left_eye")]
        np.testing.assert_allclose(eye, [0.75 if flip else 0.25, 0.5, 1.0], atol=1e-6)
