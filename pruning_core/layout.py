"""TokenLayout: where every visual token came from (frame, row, col), for any backbone."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TokenLayout:
    """Provenance of the N visual tokens the LLM sees, in their sequence order.

    ``frame`` is the frame index (Qwen2-VL: the temporal pair index, each pair covering
    ``frames_per_step`` source frames). ``row``/``col`` index a ``grid_h`` x ``grid_w`` grid.
    Tokens are stored frame-major, row-major, so token id = frame*grid_h*grid_w + row*grid_w + col.
    """

    num_frames: int
    grid_h: int
    grid_w: int
    frames_per_step: int = 1

    @property
    def tokens_per_frame(self) -> int:
        return self.grid_h * self.grid_w

    @property
    def num_tokens(self) -> int:
        return self.num_frames * self.tokens_per_frame

    def frame_of(self, ids: torch.Tensor) -> torch.Tensor:
        return ids // self.tokens_per_frame

    def row_of(self, ids: torch.Tensor) -> torch.Tensor:
        return (ids % self.tokens_per_frame) // self.grid_w

    def col_of(self, ids: torch.Tensor) -> torch.Tensor:
        return ids % self.grid_w

    def frame_grid(self, x: torch.Tensor) -> torch.Tensor:
        """View a per-token tensor [N, ...] as [F, H*W, ...] (requires the full, unpruned set)."""
        return x.reshape(self.num_frames, self.tokens_per_frame, *x.shape[1:])

    def kept_per_frame(self, ids: torch.Tensor) -> torch.Tensor:
        """Number of kept tokens in each frame, [F]."""
        return torch.bincount(self.frame_of(ids), minlength=self.num_frames)

    def kept_mask(self, ids: torch.Tensor) -> torch.Tensor:
        """Boolean [F, H, W] grid of the kept ids, for drawing."""
        mask = torch.zeros(self.num_tokens, dtype=torch.bool)
        mask[ids.cpu()] = True
        return mask.view(self.num_frames, self.grid_h, self.grid_w)

    def to_dict(self) -> dict:
        return {"num_frames": self.num_frames, "grid_h": self.grid_h, "grid_w": self.grid_w,
                "frames_per_step": self.frames_per_step}
