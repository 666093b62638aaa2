"""Keypoint part sets of GAWWN (Reed et al., NeurIPS 2016, §4): CUB birds and MPII humans.

A keypoint set is an ordered tuple of part names; keypoints are ``(x, y, visibility)``
rows in that order, x and y normalised to [0, 1] by the image width and height, and an
invisible part is all zeros (as in CUB's ``part_locs.txt``). Names use ``left_``/``right_``
(CUB) or ``l_``/``r_`` (MPII) prefixes for the sides of the bird or person (not of the
image), so a horizontal flip swaps them: :func:`flip_order`.
"""

from __future__ import annotations

from tfcoord.errors import UserError

# CUB-200-2011 parts/parts.txt, ids 1..15 in this order.
CUB_PARTS = ("back", "beak", "belly", "breast", "crown", "forehead", "left_eye", "left_leg", "left_wing", "nape",
             "right_eye", "right_leg", "right_wing", "tail", "throat")
# MPII Human Pose joint ids 0..15 in this order.
MPII_JOINTS = ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax", "upper_neck",
               "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist")
PART_SETS = {"cub": CUB_PARTS, "mpii": MPII_JOINTS}

_SIDES = (("left_", "right_"), ("l_", "r_"))


def part_names(part_set: str) -> tuple[str, ...]:
    if part_set not in PART_SETS:
        raise UserError(f"unknown part set {part_set!r}; choose one of {', '.join(PART_SETS)}")
    return PART_SETS[part_set]


def mirror_name(name: str) -> str:
    """The part on the other side of the body (``left_eye`` <-> ``right_eye``); central parts map to themselves."""
    for left, right in _SIDES:
        if name.startswith(left):
            return right + name[len(left):]
        if name.startswith(right):
            return left + name[len(right):]
    return name


def flip_order(names) -> tuple[int, ...]:
    """Index permutation that relabels keypoints after a horizontal flip: ``flipped = keypoints[order]``."""
    names = tuple(names)
    return tuple(names.index(mirror_name(name)) if mirror_name(name) in names else i for i, name in enumerate(names))
