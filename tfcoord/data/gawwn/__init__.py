"""GAWWN's data: part sets, caption tokens and the JSONL annotation format with its converters.

* :mod:`.parts` — the CUB-200-2011 bird parts and the MPII Human Pose joints, with the
  left/right swap a horizontal flip implies;
* :mod:`.captions` — the 70-symbol alphabet of the char-CNN-RNN text encoders and the
  fixed-length character tokens (201) every caption becomes;
* :mod:`.annotations` — the JSONL annotation format (image, captions, box, keypoints,
  class), its validation and the ``annotations:FILE.jsonl`` data source;
* :mod:`.converters` — CUB-200-2011 and MPII Human Pose to JSONL
  (``python -m tfcoord.data.convert_annotations``).
"""
