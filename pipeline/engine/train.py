"""The train stage: masks, then nerfacto (nerfstudio's Python API) on the masked photos.

Writes, under WS/model/:
  nerfacto/config.yml                     nerfstudio's config (loads with its own tools)
  nerfacto/nerfstudio_models/step-*.ckpt  the latest checkpoint
  train.json                              preset, device, steps done, what was trained on
  loss.json                               [[step, loss], …] for a loss curve
A new run with the same preset resumes from the latest checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .device import pick_device
from .errors import InputError
from .masks import VisualHull
from .presets import DEFAULT_PRESET, Preset, get_preset
from .product import load_product, save_product_box
from .progress import Progress
from .trainset import prepare_training_set
from .workspace import METHOD_NAME, Workspace, write_json_atomic

log = logging.getLogger(__name__)

MASKS_SHARE = 0.05
"""Share of the train stage's progress bar given to building the masks."""
LOSS_POINTS = 500
"""About this many points are kept in loss.json, however long the training."""
TRAIN_SEED = 42
"""Every job trains with this seed (nerfstudio's own default). Another seed trains another
NeRF from the same photos: bench/quality.py --seed tells a change from training's noise."""
HULL_MARGIN_VOXELS = 1
"""The NeRF may fill the visual hull grown by this many voxels: slack for the poses'
and the masks' errors at the product's edges."""
CAMERA_OPTIMIZER = "off"
"""The cameras stay where the colmap stage put them. nerfacto's own default ("SO3xR3")
moves each photo's camera as it trains, but the masks, the carved hull and the rays it
samples are all cut with the colmap stage's poses: a camera that moves no longer sees its
own mask. Measured in docs/presets.md (bench/quality.py, CPU draft, the same poses)."""
DISTORTION_LOSS_MULT = (0.005, 0.02)
"""Nerfacto's distortion loss gathers each ray's weight at the surface (its default is
0.002): its weight while the surface forms, and at the last step. Stronger than nerfacto's,
it clears the faint haze that fills the space beside the product's edges; at 0.02 from the
start, with the cameras held still, it thins the surface to a sheet the proposal samplers
step over, and the renders show pinholes through the product. Once the surface has formed
the heavier weight no longer thins it."""
DISTORTION_RAMP_FROM = 0.6
"""Share of the steps after which the distortion loss's weight starts rising to its last."""


def model_base_dir(ws: Workspace) -> Path:
    return ws.method_dir


def checkpoint_dir(ws: Workspace) -> Path:
    return model_base_dir(ws) / "nerfstudio_models"


def latest_checkpoint(ws: Workspace) -> Path | None:
    found = sorted(checkpoint_dir(ws).glob("step-*.ckpt"))
    return found[-1] if found else None


def train_state_path(ws: Workspace) -> Path:
    return ws.train_json


def loss_path(ws: Workspace) -> Path:
    return ws.loss_json


def hull_path(ws: Workspace) -> Path:
    return ws.hull_npz


def save_hull(ws: Workspace, hull: VisualHull) -> None:
    grown = hull.dilated(HULL_MARGIN_VOXELS)
    np.savez_compressed(hull_path(ws), corner=grown.lo, step=grown.step,
                        occupied=grown.occupied)


def read_hull(ws: Workspace) -> VisualHull | None:
    """The hull the NeRF is carved to (None: the masks made none, or an older model)."""
    try:
        with np.load(hull_path(ws)) as data:
            return VisualHull(data["corner"], float(data["step"]), data["occupied"])
    except FileNotFoundError:
        return None


def read_train_state(ws: Workspace) -> dict[str, Any] | None:
    try:
        return json.loads(train_state_path(ws).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@dataclass(frozen=True)
class TrainResult:
    preset: str
    device: str
    steps: int
    """Training steps done in total, resumed ones included."""
    photos: int
    loss: float | None
    seconds: float
    seconds_per_step: float | None
    checkpoint: Path
    resumed_from: int | None

    def summary_line(self) -> str:
        resumed = f", resumed at step {self.resumed_from}" if self.resumed_from else ""
        loss = f", final loss {self.loss:.4f}" if self.loss is not None else ""
        rate = f" ({self.seconds_per_step:.2f} s/step)" if self.seconds_per_step else ""
        return (f"Trained {self.steps} steps on {self.photos} photos with the {self.preset} "
                f"preset on {self.device} in {self.seconds:.0f} s{rate}{loss}{resumed}.")


def build_trainer_config(ws: Workspace, preset: Preset, box: tuple, iterations: int,
                         hull: VisualHull | None = None, seed: int = TRAIN_SEED) -> Any:
    """nerfstudio's TrainerConfig for nerfacto on WS/dataset/transforms_train.json."""
    from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
    from nerfstudio.configs.base_config import LocalWriterConfig, LoggingConfig, MachineConfig
    from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
    from nerfstudio.engine.optimizers import AdamOptimizerConfig
    from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
    from nerfstudio.engine.trainer import TrainerConfig
    from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig

    from .nerf_model import ProductNerfactoModelConfig

    transforms = ws.transforms_train_json
    dataparser = NerfstudioDataParserConfig(
        data=transforms,
        # The colmap stage already normalized the frame: keep it, so rendering cameras and
        # the product's box from object.json stay valid as they are.
        orientation_method="none",
        center_method="none",
        auto_scale_poses=False,
        scale_factor=1.0,
        downscale_factor=1,
        # Every photo trains; we evaluate against held-out views in the benchmark instead.
        eval_mode="all",
    )
    model = ProductNerfactoModelConfig(
        product_box=box,
        hull_grid=(None if hull is None else
                   (tuple(float(v) for v in hull.lo), hull.step, hull.occupied.shape)),
        eval_num_rays_per_chunk=1 << 14,
        # Not nerfacto's method default of 0.01: with a random background and a nearly
        # empty start, the colour only sees how the background differs from the product
        # and is driven into the sigmoid's flat end (black, for good) within ~30 steps.
        average_init_density=1.0,
        # Space inside every silhouette that no photo sees against the backdrop keeps that
        # starting density unless something clears it: the empty-space prior does, with a
        # somewhat stronger distortion loss than nerfacto's (DISTORTION_LOSS_MULT).
        distortion_loss_mult=DISTORTION_LOSS_MULT[0],
        distortion_loss_mult_final=DISTORTION_LOSS_MULT[1],
        distortion_ramp_steps=(int(iterations * DISTORTION_RAMP_FROM), iterations),
        sparsity_loss_mult=0.1,
        num_proposal_samples_per_ray=preset.proposal_samples,
        num_nerf_samples_per_ray=preset.nerf_samples,
        log2_hashmap_size=preset.log2_hashmap_size,
        max_res=preset.max_res,
        proposal_weights_anneal_max_num_iters=min(1000, max(1, iterations // 2)),
        implementation="tcnn" if preset.device == "cuda" else "torch",
        camera_optimizer=CameraOptimizerConfig(mode=CAMERA_OPTIMIZER),
    )
    decay = {"optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15),
             "scheduler": ExponentialDecaySchedulerConfig(lr_final=1e-4, max_steps=200000)}
    return TrainerConfig(
        method_name=METHOD_NAME,
        experiment_name=ws.model_dir.name,
        output_dir=ws.root,
        timestamp="",
        max_num_iterations=iterations,
        steps_per_save=10**9,  # we save on a timer and at the end
        mixed_precision=preset.device == "cuda",
        machine=MachineConfig(device_type=preset.device, num_devices=1, seed=seed),
        vis="tensorboard",
        logging=LoggingConfig(local_writer=LocalWriterConfig(enable=False), profiler="none"),
        pipeline=VanillaPipelineConfig(
            datamanager=VanillaDataManagerConfig(
                dataparser=dataparser,
                train_num_rays_per_batch=preset.rays_per_batch,
                eval_num_rays_per_batch=preset.rays_per_batch,
            ),
            model=model,
        ),
        optimizers={
            "proposal_networks": dict(decay),
            "fields": dict(decay),
        },
    )


def train(
    ws: Workspace,
    *,
    preset: str = DEFAULT_PRESET,
    iterations: int | None = None,
    progress: Progress | None = None,
    seed: int = TRAIN_SEED,
) -> TrainResult:
    """Builds the masks and trains nerfacto in WS/model/, resuming where it stopped."""
    started = time.monotonic()
    if iterations is not None and iterations < 1:
        raise InputError("--iterations must be at least 1.")
    device = pick_device()
    p = get_preset(preset, device)
    total = iterations or p.iterations
    product = load_product(ws)
    search = tuple(tuple(float(v) for v in corner)
                   for corner in (product.search_box.lo, product.search_box.hi))
    trained_on = {"preset": p.name, "device": device, "image_size": p.image_size,
                  "max_photos": p.max_photos, "box": search,
                  "poses_mtime": ws.transforms_json.stat().st_mtime,
                  # A checkpoint trained with moving cameras holds their optimizer's state,
                  # which a trainer without one cannot load: such a model trains again.
                  "camera_optimizer": CAMERA_OPTIMIZER}
    if seed != TRAIN_SEED:
        # Recorded only when not the jobs' own: their workspaces resume as they always did.
        trained_on["seed"] = seed

    previous = read_train_state(ws)
    checkpoint = latest_checkpoint(ws)
    resumable = (checkpoint is not None and previous is not None
                 and previous.get("trained_on") == json.loads(json.dumps(trained_on))
                 and ws.transforms_train_json.exists())
    if resumable:
        photos = int(previous["photos"])
        _report(progress, MASKS_SHARE, f"resuming from {checkpoint.name}")
    else:
        shutil.rmtree(model_base_dir(ws), ignore_errors=True)
        loss_path(ws).unlink(missing_ok=True)
        hull_path(ws).unlink(missing_ok=True)
        training_set = prepare_training_set(
            ws, product.search_box, image_size=p.image_size, max_photos=p.max_photos,
            core=product.points_box, carve_margin=HULL_MARGIN_VOXELS,
            report=lambda f, msg: _report(progress, MASKS_SHARE * f, msg))
        if training_set.hull is not None:
            # The whole product, as the silhouettes show it: a plain top has no points.
            product = save_product_box(ws, training_set.hull.box)
            save_hull(ws, training_set.hull)
        photos = len(training_set.names)
        write_json_atomic(train_state_path(ws), {
            "status": "training", "trained_on": trained_on, "photos": photos,
            "names": training_set.names, "mask_coverage": training_set.coverage, "step": 0,
            "preset": asdict(p)})

    from .nerfstudio_compat import allow_checkpoint_loading

    allow_checkpoint_loading()
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(nerfstudio|torch)\.")
    box = tuple(tuple(float(v) for v in corner)
                for corner in (product.crop_box.lo, product.crop_box.hi))
    hull = read_hull(ws)
    config = build_trainer_config(ws, p, box, total, hull, seed)
    if resumable:
        config.load_dir = checkpoint_dir(ws)
    config.save_config()
    # As nerfstudio's own train command does: the same photos train the same NeRF (on a
    # CPU; a GPU's atomics still vary a little), so a rerun or a benchmark is comparable.
    _seed(config.machine.seed)
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    if hull is not None:
        trainer.pipeline.model.field.set_hull(hull.occupied)
    # nerfstudio keeps the step to resume from in this attribute after loading a checkpoint.
    start = int(getattr(trainer, "_start_step", 0))
    history = loss_history(ws) if resumable else []
    result_loss, loop_seconds = _train_loop(ws, trainer, start, total, p, history, progress)
    elapsed = time.monotonic() - started

    steps_now = max(start, total)
    final = latest_checkpoint(ws)
    assert final is not None
    state = read_train_state(ws) or {}
    state.update(status="trained", step=steps_now, seconds=round(elapsed, 1))
    write_json_atomic(train_state_path(ws), state)
    ran = total - start
    return TrainResult(
        preset=p.name, device=device, steps=steps_now, photos=photos, loss=result_loss,
        seconds=elapsed, seconds_per_step=(loop_seconds / ran) if ran > 0 else None,
        checkpoint=final, resumed_from=start if resumable else None)


def _train_loop(ws: Workspace, trainer: Any, start: int, total: int, preset: Preset,
                history: list[list[float]], progress: Progress | None
                ) -> tuple[float | None, float]:
    """Steps `start`…`total`-1 as nerfstudio's Trainer.train does them, reporting each."""
    from nerfstudio.engine.callbacks import TrainingCallbackLocation

    every = max(1, total // LOSS_POINTS)
    last_save = time.monotonic()
    loop_started = time.monotonic()
    loss_value: float | None = history[-1][1] if history else None
    step = start - 1
    for step in range(start, total):
        trainer.pipeline.train()
        for callback in trainer.callbacks:
            callback.run_callback_at_location(step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        loss, _loss_dict, _metrics = trainer.train_iteration(step)
        for callback in trainer.callbacks:
            callback.run_callback_at_location(step, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise InputError("Training diverged (the loss is not a number). Run the train "
                             "stage again; if it repeats, re-take the photos with even light.")
        if step % every == 0 or step == total - 1:
            history.append([step, round(loss_value, 6)])
        done = step + 1
        _report(progress, MASKS_SHARE + (1 - MASKS_SHARE) * done / total,
                f"step {done}/{total}, loss {loss_value:.4f}", step=done, iterations=total,
                loss=round(loss_value, 5))
        if time.monotonic() - last_save > preset.checkpoint_every_s and done < total:
            _save(ws, trainer, step, history)
            last_save = time.monotonic()
    loop_seconds = time.monotonic() - loop_started
    if step >= start or latest_checkpoint(ws) is None:
        _save(ws, trainer, max(step, start - 1, 0), history)
    return loss_value, loop_seconds


def _save(ws: Workspace, trainer: Any, step: int, history: list[list[float]]) -> None:
    trainer.save_checkpoint(step)
    write_json_atomic(loss_path(ws), history)
    state = read_train_state(ws)
    if state is not None:
        state["step"] = step + 1
        write_json_atomic(train_state_path(ws), state)


def loss_history(ws: Workspace) -> list[list[float]]:
    """[[step, loss], …] saved with the latest checkpoint (at most ~LOSS_POINTS points)."""
    try:
        return [list(x) for x in json.loads(loss_path(ws).read_text())]
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def _report(progress: Progress | None, fraction: float, message: str, **metrics: Any) -> None:
    if progress is not None:
        progress.update(fraction, message, **metrics)


def _seed(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
