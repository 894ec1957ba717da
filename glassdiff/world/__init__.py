"""The shapes world: scenes, captions, rendering, held-out splits."""

from .captions import caption, sample_spec
from .render import render, render_array
from .scene import Obj, Scene, Unsatisfiable, scene_from_spec
from .splits import HELDOUT_COLOR_SHAPE, HELDOUT_SHAPE_PAIRS, is_heldout

__all__ = ["caption", "sample_spec", "render", "render_array", "Obj", "Scene", "Unsatisfiable",
           "scene_from_spec", "HELDOUT_COLOR_SHAPE", "HELDOUT_SHAPE_PAIRS", "is_heldout"]
