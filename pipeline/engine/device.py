"""Which device the NeRF runs on, and how much memory it may use there."""

from __future__ import annotations

import os


def forced_device() -> str | None:
    """NERF_DEVICE ("cpu" or "cuda") when set, e.g. for tests; else None."""
    forced = os.environ.get("NERF_DEVICE", "").strip().lower()
    return forced if forced in {"cpu", "cuda"} else None


def pick_device() -> str:
    """"cuda" when a CUDA GPU is usable, else "cpu" (NERF_DEVICE overrides)."""
    if forced := forced_device():
        return forced
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def available_memory_bytes(device: str) -> int:
    """Memory free for new tensors on `device`: free GPU memory, or available system RAM."""
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)
    return _available_ram_bytes()


def _available_ram_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # Not Linux: the total physical memory, halved to stay on the safe side.
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
