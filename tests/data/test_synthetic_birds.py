"""synthetic-birds: deterministic birds whose box, parts, class and captions agree with the pixels."""

import numpy as np
import pytest

from tfcoord.data import make_dataset
from tfcoord.data.gawwn.captions import decode
from tfcoord.data.gawwn.parts import CUB_PARTS
from tfcoord.data.synthetic_birds import (NUM_CAPTIONS, PALETTE, PART_IDS, SPECIES, Species, caption_colours,
                                          render_bird, species_captions)

PART = {name: i for i, name in enumerate(CUB_PARTS)}


def nearest_colour(rgb):
    names = list(PALETTE)
    table = np.array([PALETTE[n] for n in names])
    return names[int(np.argmin(((table - rgb) ** 2).sum(axis=1)))]


def test_a_bird_is_a_pure_function_of_seed_and_index():
    a, b = render_bird(3, 17, 64, 64), render_bird(3, 17, 64, 64)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.keypoints, b.keypoints)
    assert a.captions == b.captions and a.label == b.label
    assert not np.array_equal(a.image, render_bird(3, 18, 64, 64).image)
    assert not np.array_equal(a.image, render_bird(4, 17, 64, 64).image)


@pytest.mark.parametrize("size", [(16, 20), (48, 96), (100, 60), (160, 160)])
def test_any_size(size):
    sample = render_bird(0, 5, *size)
    assert sample.image.shape == size + (3,) and sample.image.dtype == np.uint8
    assert sample.parts.shape == size


def test_box_is_tight_around_the_bird_and_parts_sit_on_it():
    on_bird = total = 0
    for index in range(30):
        sample = render_bird(0, index, 96, 96)
        ymin, xmin, ymax, xmax = sample.bbox
        assert 0 <= ymin < ymax <= 1 and 0 <= xmin < xmax <= 1
        rows, cols = np.nonzero(sample.parts)
        assert rows.min() >= round(ymin * 96) - 1 and rows.max() < round(ymax * 96) + 1
        assert cols.min() >= round(xmin * 96) - 1 and cols.max() < round(xmax * 96) + 1
        for x, y, visible in sample.keypoints:
            if visible:
                assert xmin - 0.03 <= x <= xmax + 0.03 and ymin - 0.03 <= y <= ymax + 0.03
                total += 1
                on_bird += sample.parts[min(int(y * 96), 95), min(int(x * 96), 95)] > 0
            else:
                assert x == y == 0
    assert on_bird / total > 0.9


def test_hidden_parts_are_invisible():
    seen = set()
    for index in range(60):
        sample = render_bird(1, index, 64, 64)
        near = "left" if sample.pose["facing"] < 0 else "right"  # a bird facing left shows its left side
        far = "right" if near == "left" else "left"
        kp = sample.keypoints
        assert kp[PART[f"{far}_eye"], 2] == 0
        if kp[PART["beak"], 2]:
            # the visible eye is the near one
            assert kp[PART[f"{near}_eye"], 2] == 1
        legs = kp[PART["left_leg"], 2] + kp[PART["right_leg"], 2]
        if sample.pose["flying"]:
            assert legs == 0 and kp[PART[f"{far}_wing"], 2] == 1
        else:
            assert kp[PART[f"{far}_wing"], 2] == 0
        seen.add((near, sample.pose["flying"]))
    assert len(seen) == 4  # both directions, perched and flying


def test_class_is_a_colour_scheme_the_pixels_show():
    matches = total = 0
    for index in range(40):
        sample = render_bird(2, index, 96, 96)
        assert sample.species == SPECIES[sample.label]
        for part in ("wings", "back", "tail", "crown"):
            pixels = np.isin(sample.parts, PART_IDS[part])
            if pixels.sum() < 8:
                continue
            total += 1
            matches += nearest_colour(np.median(sample.image[pixels] / 255.0, axis=0)) == getattr(sample.species, part)
    assert total > 100 and matches / total > 0.85


def test_captions_name_the_species_colours():
    assert len(SPECIES) == len({(s.crown, s.breast, s.belly, s.back, s.wings, s.tail) for s in SPECIES})
    sample = render_bird(0, 9, 64, 64)
    assert len(sample.captions) == NUM_CAPTIONS and len(set(sample.captions)) == NUM_CAPTIONS
    assert sorted(sample.captions) == sorted(species_captions(sample.species))
    for caption in sample.captions:
        for part, colour in caption_colours(caption).items():
            assert getattr(sample.species, part) == colour, caption
    assert "a small bird with a red crown, blue wings and a white belly." in species_captions(
        Species(crown="red", breast="grey", belly="white", back="grey", wings="blue", tail="grey", beak="black",
                legs="grey", size="small", beak_length="short", beak_shape="pointed", tail_length="short"))


def test_source_feeds_make_dataset_and_flips_swap_left_and_right():
    kwargs = dict(image_size=(48, 48), batch_size=8, seed=0, start_index=0)
    plain = next(iter(make_dataset("synthetic-birds", training=False, **kwargs)))
    flipped = next(iter(make_dataset("synthetic-birds", training=True, **kwargs)))
    assert plain["image"].shape == (8, 48, 48, 3) and plain["captions"].shape == (8, NUM_CAPTIONS, 201)
    assert plain["keypoints"].shape == (8, 15, 3) and plain["bbox"].shape == (8, 4)
    sample = render_bird(0, 3, 48, 48)
    assert decode(plain["captions"][3][0]) == sample.captions[0]
    assert int(plain["label"][3]) == sample.label
    flips = np.asarray(flipped["flipped"])
    assert 0 < flips.sum() < 8 and not np.asarray(plain["flipped"]).any()
    for i in range(8):
        a, b = np.asarray(plain["keypoints"][i]), np.asarray(flipped["keypoints"][i])
        if not flips[i]:
            np.testing.assert_allclose(a, b, atol=1e-6)
            continue
        np.testing.assert_allclose(np.asarray(flipped["image"][i]), np.asarray(plain["image"][i])[:, ::-1], atol=1e-6)
        for name, index in PART.items():
            mirror = PART[name.replace("left", "tmp").replace("right", "left").replace("tmp", "right")]
            expected = a[mirror].copy()
            if expected[2]:
                expected[0] = 1 - expected[0]
            np.testing.assert_allclose(b[index], expected, atol=1e-6)
        ymin, xmin, ymax, xmax = np.asarray(plain["bbox"][i])
        np.testing.assert_allclose(flipped["bbox"][i], [ymin, 1 - xmax, ymax, 1 - xmin], atol=1e-6)
