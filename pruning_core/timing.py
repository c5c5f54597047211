"""When each sampled frame was: the timing that travels from decoding to the adapter.

Mirrors ``transformers.video_utils.VideoMetadata`` (``fps``, ``total_num_frames``,
``frames_indices``) so adapters compute time-dependent inputs exactly as the processors do:
Qwen2.5-VL's ``second_per_grid_ts = temporal_patch_size / sampled_fps``, Qwen3-VL's timestamps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_FPS = 24.0
"""What transformers assumes when a video comes without metadata (``VideoMetadata.sampled_fps``)."""


@dataclass(frozen=True)
class VideoTiming:
    """fps: the source frame rate (0 = unknown); indices: source frame index of each sampled frame;
    source_frames: frames the source has; timestamps: seconds of each sample (container clock
    when the fps is unknown, else index / fps)."""

    fps: float
    indices: tuple[int, ...]
    source_frames: int
    timestamps: tuple[float, ...] = ()

    @classmethod
    def of(cls, fps: float, indices, source_frames: int, timestamps=None) -> "VideoTiming":
        idx = tuple(int(i) for i in np.asarray(indices).reshape(-1))
        if timestamps is None:
            timestamps = [i / fps for i in idx] if fps > 0 else []
        return cls(float(fps), idx, int(source_frames), tuple(float(t) for t in np.asarray(timestamps).reshape(-1)))

    @classmethod
    def frames_at(cls, num_frames: int, fps: float) -> "VideoTiming":
        """Every frame of a clip of ``num_frames`` frames at ``fps`` (in-memory frames with a known rate)."""
        return cls.of(fps, range(num_frames), num_frames)

    @classmethod
    def from_info(cls, info, num_frames: int) -> "VideoTiming | None":
        """Timing from a ``Video.to_dict()``-shaped dict (the Load Video node's ``video_info``);
        None when it is missing, malformed or describes another number of frames than ``num_frames``."""
        if not isinstance(info, dict):
            return None
        try:
            fps = float(info.get("fps") or 0.0)
            indices = info.get("indices") or list(range(int(info.get("num_frames") or num_frames)))
            source = int(info.get("source_frames") or len(indices))
            stamps = info.get("timestamps") or None
            if len(indices) != num_frames or (stamps is not None and len(stamps) != num_frames):
                return None
            return cls.of(fps, indices, source, stamps)
        except (TypeError, ValueError):
            return None

    @property
    def sampled_fps(self) -> float:
        """Frames per second of the sampled clip, as ``VideoMetadata.sampled_fps``."""
        if self.fps <= 0 or not self.indices or self.source_frames <= 0:
            return self.fps or DEFAULT_FPS
        return len(self.indices) / self.source_frames * self.fps

    def to_dict(self) -> dict:
        return {"fps": self.fps, "source_frames": self.source_frames, "indices": list(self.indices),
                "timestamps": [round(t, 4) for t in self.timestamps], "sampled_fps": self.sampled_fps}


def sampled_fps(timing: VideoTiming | None) -> float:
    """``timing.sampled_fps``, or transformers' default when frames come without timing."""
    return DEFAULT_FPS if timing is None else timing.sampled_fps
