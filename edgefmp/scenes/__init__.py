"""Synthetic camera-like scenes of easy-VQA shapes, with ground truth and camera corruptions.

The demo zoo trains on these scenes, and the demo streams and benchmarks run on them: a scene
is a textured, unevenly lit background with a few coloured shapes (circle, rectangle, triangle
in 8 colours) whose boxes are known exactly. No torch needed.

>>> import numpy as np
>>> from edgefmp.scenes import compose_scene, corrupt, load_shape_pool
>>> pool = load_shape_pool("test", limit=50)
>>> scene = compose_scene(np.random.default_rng(0), pool, n_objects=(2, 2))
>>> len(scene.objects), corrupt(scene.image, "blur", 3).shape
(2, (240, 320, 3))
"""

from __future__ import annotations

from edgefmp.scenes.compose import Scene, SceneObject, compose_scene
from edgefmp.scenes.corrupt import CORRUPTIONS, corrupt
from edgefmp.scenes.pool import COLORS, PALETTE, SHAPES, ShapeSample, load_shape_pool
from edgefmp.scenes.video import FrameTruth, scene_frames, truth_to_jsonl, write_scene_video

__all__ = [
    "COLORS",
    "CORRUPTIONS",
    "FrameTruth",
    "PALETTE",
    "SHAPES",
    "Scene",
    "SceneObject",
    "ShapeSample",
    "compose_scene",
    "corrupt",
    "load_shape_pool",
    "scene_frames",
    "truth_to_jsonl",
    "write_scene_video",
]
