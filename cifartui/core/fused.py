"""One-pass resize + normalise of an upscaled uint8 batch on the CPU (the pretrained-model path: 32 -> 224 px).

With torch ops the float output (77 MB for 128 images at 224 px) is walked several times: resize, convert,
scale, shift. This kernel, compiled by numba, reads each source image once and writes each output value
once: bilinear (align_corners=False, as ``F.interpolate``) along the rows of a plane into a small buffer
that stays in cache, normalised there, then along the columns straight into the output. The result equals
``F.interpolate(x.float(), ...) * scale + shift`` up to float rounding (no rounding to whole intensity
levels in between). Each thread takes a share of the planes and runs the compiled loop with the GIL
released, so no OpenMP runtime is needed beside torch's.

numba is optional at run time: without it (or on a platform it does not build for) ``available()`` is
False and the loader keeps its torch path.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch


@functools.lru_cache(maxsize=1)
def _kernel():
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(nogil=True, cache=True)
    def resize_normalise(src, out, first, last, y0, y1, wy, x0, x1, wx, scale, shift):  # pragma: no cover - compiled
        channels, height = src.shape[1], src.shape[2]
        size_y, size_x = out.shape[2], out.shape[3]
        rows = np.empty((height, size_x), np.float32)
        for plane in range(first, last):
            b, c = plane // channels, plane % channels
            s, t = scale[c], shift[c]
            for h in range(height):
                for j in range(size_x):
                    a = np.float32(src[b, c, h, x0[j]])
                    d = np.float32(src[b, c, h, x1[j]])
                    rows[h, j] = (a + (d - a) * wx[j]) * s + t
            for i in range(size_y):
                r0, r1, w = rows[y0[i]], rows[y1[i]], wy[i]
                o = out[b, c, i]
                for j in range(size_x):
                    o[j] = r0[j] + (r1[j] - r0[j]) * w

    return resize_normalise


def available() -> bool:
    return _kernel() is not None


@functools.lru_cache(maxsize=16)
def _coefficients(n_in: int, n_out: int):
    """Source indices and weights of bilinear resizing, as torch computes them (align_corners=False)."""
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _workers(n: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(n, thread_name_prefix="cifartui-resize")


def resize_normalise(x: torch.Tensor, out: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                     threads: int | None = None) -> torch.Tensor:
    """Write ``F.interpolate(x.float(), out.shape[-2:], bilinear) * scale + shift`` into ``out``.

    ``x``: uint8 [B, C, H, W] on the CPU; ``out``: float32 [B, C, S, T] with S >= H and T >= W (upscaling:
    bilinear without antialiasing is exact there); ``scale``, ``shift``: C values, broadcast per channel.
    """
    kernel = _kernel()
    if kernel is None:
        raise RuntimeError("the fused resize needs numba (pip install numba)")
    b, c, h, w = x.shape
    size_y, size_x = out.shape[-2:]
    if out.shape[:2] != x.shape[:2] or size_y < h or size_x < w:
        raise ValueError(f"fused resize: {tuple(x.shape)} -> {tuple(out.shape)} is not an upscale of each image")
    src, dst = x.contiguous().numpy(), out.numpy()
    args = (*_coefficients(h, size_y), *_coefficients(w, size_x),
            scale.reshape(-1).to(torch.float32).numpy(), shift.reshape(-1).to(torch.float32).numpy())
    planes = b * c
    threads = max(1, min(threads or torch.get_num_threads(), planes))
    cuts = [planes * k // threads for k in range(threads + 1)]
    rest = [_workers(threads - 1).submit(kernel, src, dst, cuts[k], cuts[k + 1], *args) for k in range(1, threads)]
    try:
        kernel(src, dst, cuts[0], cuts[1], *args)
    finally:
        for job in rest:  # every plane is written (or has failed) before the batch is handed out
            job.result()
    return out
