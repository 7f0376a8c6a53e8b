"""The training loop: epochs, validation schedule, monitor, early stopping, checkpoints, logs.

Checkpoints (``<run>/models``): ``checkpoint-epoch<N>.pth`` every ``save_period`` epochs (the
newest ``num_keep_ckpts`` kept), each holding the weights, optimiser, scheduler, RNG and monitor
states, so ``--resume`` from one continues exactly where the run was; and ``trained_model.pth``
for the best monitored epoch, holding its weights and config only (no optimiser state, a
quarter of the size with Ranger; ``--resume`` from it continues from the epoch checkpoint of
its epoch). Training ends with a test-split evaluation of the best model, written to
``<run>/models/metrics.json``. Every epoch appends its loss, learning rate and validation
metrics to ``<run>/models/history.json`` (``report.history``). A step whose loss is NaN or infinite
stops training (:func:`non_finite_loss`), and a best model with non-finite weights is not scored
(its metrics.json says why). Under torchrun
(trainer/distributed.py) every rank trains; evaluation, checkpoints, history and logs are rank 0's.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from data_loader.batches import Batch
from data_loader.expert_loader import ExpertDataLoader
from logger.logger import get_logger
from model.loss import RankingLoss
from model.metric import GMEAN_KEY
from report.history import HISTORY_FILE, read_history, write_history
from report.run_folder import RunDirs
from report.site import publish_run_safely
from trainer import challenge
from trainer.checkpoints.files import check_weights_fit, is_own_checkpoint, load_any_checkpoint, save_checkpoint
from trainer.distributed import Distributed, broadcast, data_parallel, global_similarities
from trainer.evaluate import (
    EvalResult,
    evaluate,
    format_table,
    unscored_reason,
    write_metrics_json,
    write_page,
    write_unscored_json,
)
from trainer.precision import autocast
from trainer.teachtext.distill import Distillation
from utils.config.options import TrainerOptions
from utils.config.resolved import Config
from utils.errors import ConfigError, NonFiniteError
from utils.summary import count_trainable


class Monitor:
    """``"max <key>"`` / ``"min <key>"`` / ``"off"``: tracks the best value and stale evaluations."""

    def __init__(self, spec: str, best: float | None = None, stale: int = 0):
        self.mode, _, self.key = spec.partition(" ")
        if self.mode not in ("max", "min", "off"):
            raise ConfigError(f"trainer.monitor: expected 'max <metric>', 'min <metric>' or 'off', got {spec!r}")
        self.best = best if best is not None else (-math.inf if self.mode == "max" else math.inf)
        self.stale = stale

    def update(self, logs: dict[str, float]) -> bool:
        """Record an evaluation; True when it is the best so far (ties count as better)."""
        if self.mode == "off":
            return True
        if self.key not in logs:
            raise ConfigError(f"trainer.monitor: metric '{self.key}' is not logged; logged: {', '.join(sorted(logs))}")
        value = logs[self.key]
        better = value >= self.best if self.mode == "max" else value <= self.best
        if better:
            self.best, self.stale = value, 0
        else:
            self.stale += 1
        return better


def epoch_line(epoch: int, epochs: int, loss: float, lr: float, logs: dict[str, float], improved: bool) -> str:
    """One rounded console line for an epoch: loss (with TeachText its ranking and distillation
    parts), learning rate and, after an evaluation, the
    t2v R1/R5/R10/MedR/geometric mean, the v2t geometric mean and, with relevance metrics, the
    average nDCG and mAP in percent (the full values go to info.log)."""
    line = f"epoch {epoch:>{len(str(epochs))}}/{epochs}  loss {loss:.4f}"
    if "loss_distil" in logs:
        line += f" (ranking {loss - logs['loss_distil']:.4f} + distil {logs['loss_distil']:.4f})"
    line += f"  lr {lr:.2e}"
    if "val_t2v_metrics_R1" in logs:
        t2v = {key: logs[f"val_t2v_metrics_{key}"] for key in ("R1", "R5", "R10", "MedR", GMEAN_KEY)}
        line += ("  val t2v " + " ".join(f"{key.replace(GMEAN_KEY, 'geom')} {value:.1f}" for key, value in t2v.items()))
        if f"val_v2t_metrics_{GMEAN_KEY}" in logs:
            line += f" | v2t geom {logs[f'val_v2t_metrics_{GMEAN_KEY}']:.1f}"
        if "val_relevance_metrics_nDCG_avg" in logs:
            line += (f" | nDCG {100 * logs['val_relevance_metrics_nDCG_avg']:.1f}"
                     f" mAP {100 * logs['val_relevance_metrics_mAP_avg']:.1f}")
        line += "  (best)" if improved else ""
    return line


def non_finite_loss(epoch: int, step: int, parts: dict[str, float], run: Path) -> NonFiniteError:
    """The one-line error of a training step whose loss is NaN or infinite: the epoch, the step
    and the parts of the loss that are not finite (ranking ``t2v``/``v2t``/``loss``, ``distil``)."""
    bad = ", ".join(f"{name} {value}" for name, value in parts.items() if not math.isfinite(value))
    return NonFiniteError(f"{run}: training stopped at epoch {epoch}, step {step}: the loss is not finite "
                          f"({bad or 'sum of finite parts overflowed'}); the run's checkpoints are those of the "
                          "epochs before (check the learning rate, loss settings and teacher files)")


class Trainer:
    """Wires a model, loss, optimiser and data together and runs the training schedule."""

    def __init__(self, config: Config, options: TrainerOptions, model: torch.nn.Module, loss: RankingLoss,
                 optimizer: torch.optim.Optimizer, scheduler: Any, data: ExpertDataLoader,
                 dirs: RunDirs, device: torch.device, page_writer: Callable[..., Path],
                 test_data: Callable[[], ExpertDataLoader], distillation: Distillation | None = None,
                 place: Distributed | None = None):
        self.config = config
        self.opts = options
        self.model, self.loss, self.optimizer, self.scheduler = model.to(device), loss, optimizer, scheduler
        self.data, self.dirs, self.device, self.page_writer = data, dirs, device, page_writer
        self.test_data = test_data
        self.distillation = distillation
        self.log = get_logger()
        self.monitor = Monitor(self.opts.monitor)
        self.start_epoch = 1
        self.best_epoch: int | None = None
        self.best_path = self.dirs.models / "trained_model.pth"
        self.generator = torch.Generator().manual_seed(int(config.get("seed", 0)))
        self.place = place or Distributed()
        self.writer = SummaryWriter(str(dirs.log)) if self.opts.tensorboard and self.place.is_main else None
        self.history: list[dict] = []
        self.train_model = data_parallel(self.model, self.place, device)
        if self.opts.compile:
            self.train_model = torch.compile(self.train_model)

    # ------------------------------------------------------------------ checkpoints
    def _weights(self, epoch: int) -> dict:
        """What the best model file holds: weights, config, epoch and monitored value."""
        return {
            "arch": type(self.model).__name__,
            "model_config": dataclasses.asdict(self.model.config),
            "epoch": epoch,
            "state_dict": self.model.state_dict(),
            "monitor_best": float(self.monitor.best),
            "config": self.config.data,
        }

    def _state(self, epoch: int) -> dict:
        """What an epoch checkpoint holds: the weights and everything needed to continue."""
        return {
            **self._weights(epoch),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "monitor_stale": self.monitor.stale,
            "best_epoch": self.best_epoch,
            "rng": {"torch": torch.get_rng_state(), "data": self.generator.get_state()},
        }

    def resume(self, state: dict, path: Path) -> None:
        """Continue from checkpoint ``state`` read from ``path`` (``trainer.checkpoints.files.load_any_checkpoint``).

        A checkpoint of this project restores weights, optimiser, scheduler, monitor and RNG
        states, so the run ends as an uninterrupted one would. One written by the original
        trainer holds weights, optimiser state and the best monitored value only: the scheduler
        continues from the resumed epoch and batches are drawn from this run's seed.
        """
        check_weights_fit(self.model.state_dict(), state["state_dict"], path)
        self.model.load_state_dict(state["state_dict"])
        if state.get("optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("lr_scheduler"):
            self.scheduler.load_state_dict(state["lr_scheduler"])
        elif self.scheduler is not None:
            self.scheduler.last_epoch = state["epoch"]
        self.monitor = Monitor(self.opts.monitor, state.get("monitor_best"), state.get("monitor_stale", 0))
        if "rng" in state:
            torch.set_rng_state(state["rng"]["torch"])
            self.generator.set_state(state["rng"]["data"])
        else:
            self.log.info(f"{path} holds no RNG state (original trainer): batches follow this run's seed")
        self.best_epoch = state.get("best_epoch")
        if is_own_checkpoint(state) and self.best_epoch == state["epoch"] and self.place.is_main:
            # this checkpoint is the best model: make sure trained_model.pth is this epoch's
            self.best_path = save_checkpoint(self.dirs.models / "trained_model.pth", self._weights(state["epoch"]))
        if not is_own_checkpoint(state):  # the original's run folder keeps its best model until this run beats it
            prior_best = Path(path).parent / "trained_model.pth"
            self.best_path = prior_best if prior_best.is_file() else Path(path)
        self.start_epoch = state["epoch"] + 1
        if self.place.is_main:
            self.history = read_history(self.dirs.models / HISTORY_FILE, before_epoch=self.start_epoch)
        self.log.info(f"Resumed from {path} (epoch {state['epoch']}); continuing at epoch {self.start_epoch}")

    def _save(self, epoch: int, improved: bool) -> None:
        """The best model first, then the epoch checkpoint: a run killed between the two resumes
        from the previous epoch and saves this one again, so the pair never disagrees. Rank 0 only."""
        if improved:
            self.best_epoch = epoch
        if not self.place.is_main:
            return
        if improved:
            self.best_path = save_checkpoint(self.dirs.models / "trained_model.pth", self._weights(epoch))
            self.log.debug(f"Saved best model (epoch {epoch}, {self.monitor.key or 'last'} = {self.monitor.best})")
        if epoch % self.opts.save_period == 0 or epoch == self.opts.epochs:
            save_checkpoint(self.dirs.models / f"checkpoint-epoch{epoch}.pth", self._state(epoch))
            kept = sorted(self.dirs.models.glob("checkpoint-epoch*.pth"),
                          key=lambda p: int(p.stem.removeprefix("checkpoint-epoch")))
            for old in kept[:-self.opts.num_keep_ckpts]:
                old.unlink()

    # ------------------------------------------------------------------ loop
    def _batch_loss(self, batch: Batch, sims: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training loss of ``batch`` given its [caption, video] similarities ``sims`` (of the
        global batch), and its named parts (scalars summing to it): the ranking loss's own parts
        (``t2v``, ``v2t`` where it has them, else ``loss``), and with TeachText ``distil``, the
        weighted distillation term distil_weight * SmoothL1(similarities, the teachers' mean)."""
        parts = self.loss.batch_parts(sims, batch.relevance)
        if self.distillation is not None:
            parts.update(self.distillation.batch_parts(sims, batch))
        return sum(parts.values()), parts

    @torch.no_grad()
    def _level_losses(self, batch: Batch, out: dict) -> dict[str, torch.Tensor]:
        """For a model that scores several levels and trains on their fusion (HGR's
        ``level_similarities``, {level: [caption, video]}), the ranking loss of each level
        alone, ``level_<name>``: logged with the loss parts, never optimised (as the original,
        whose ``loss_weights=None`` leaves them out; it scores the verb and noun levels against
        level-specific relevances that never fall below 0.5, here every level uses the batch's)."""
        return {f"level_{name}": sum(self.loss.batch_parts(level, batch.relevance).values())
                for name, level in out.get("level_similarities", {}).items()}

    def _train_epoch(self, epoch: int) -> tuple[float, dict[str, float]]:
        """Train one epoch; returns the mean loss and the mean of each of its parts."""
        self.model.train()
        total, count = 0.0, 0
        part_totals: dict[str, float] = {}
        samples_seen = (epoch - 1) * len(self.data.train_rows)
        place = self.place
        bar = tqdm(self.data.train_batches(self.generator, place.rank, place.world_size,
                                           relevance=self.loss.needs_relevance),
                   total=self.data.num_train_batches(place.world_size), desc=f"epoch {epoch}/{self.opts.epochs}",
                   leave=False, disable=not place.is_main)
        for i, batch in enumerate(bar):
            batch = batch.to(self.device)
            with autocast(self.device, self.opts.precision):
                out = self.train_model(batch.experts, batch.ind, batch.text)
            sims = global_similarities(self.model, out, batch.ind, place)  # [caption, video] of the global batch
            loss, parts = self._batch_loss(batch, sims)
            parts.update(self._level_losses(batch, out))
            loss.backward()
            self.optimizer.step()
            # freed now, not before the next backward: the next forward's activations then fit
            # where they were (full-scale MSR-VTT CE: 0.45 GiB less peak memory)
            self.optimizer.zero_grad(set_to_none=True)
            loss_value, *part_values = torch.stack([loss, *parts.values()]).detach().tolist()  # one device sync
            if not math.isfinite(loss_value):  # stops before any checkpoint holds this step's weights
                raise non_finite_loss(epoch, i + 1, dict(zip(parts, part_values)), self.dirs.models)
            total, count = total + loss_value, count + 1
            for name, value in zip(parts, part_values):
                part_totals[name] = part_totals.get(name, 0.0) + value
            samples_seen += len(batch) * place.world_size
            bar.set_postfix(loss=f"{loss_value:.4f}")
            if self.writer and i % self.opts.log_every == 0:
                self.writer.add_scalar("train/loss", loss_value, samples_seen)
                for name, value in zip(parts, part_values):
                    self.writer.add_scalar(f"train/loss_{name}", value, samples_seen)
        count = max(count, 1)
        return total / count, {name: value / count for name, value in part_totals.items()}

    def _evaluate(self, which: str, data: ExpertDataLoader, epoch: int) -> EvalResult:
        """Evaluate on ``data``; a challenge-mode test run writes its predictions CSV into the log
        folder and skips the metrics and pages of the test phase (trainer/challenge.py)."""
        submission = which == "test" and bool(self.config.get("challenge_mode"))
        result = evaluate(self.model, data, self.device, self.opts.eval_chunk_videos, self.config.get("metrics"),
                          progress=self.place.is_main, precision=self.opts.precision,
                          with_metrics=not submission or challenge.has_metrics(data.eval_split))
        if submission:
            challenge.write_submission(self.dirs.log, data.dataset_name, result.split, result.sims,
                                       result.query_masks)
        if not result.metrics:
            return result
        title = f"{self.dirs.models.parent.name} - {result.split} - epoch {epoch}"
        write_page(self.page_writer, self.dirs.web / f"{which}.html", result, data, title)
        if self.writer:
            for name, res in result.metrics.items():
                for key, value in res.items():
                    self.writer.add_scalar(f"{which}/{name}/{key}", value, epoch)
        return result

    def train(self) -> EvalResult | None:
        """Run the remaining epochs, then evaluate the best model on the test split (rank 0;
        other ranks return None)."""
        self.log.info(f"Training on {self.device} in {self.opts.precision}: "
                      f"{len(self.data.train_rows)} training videos, "
                      f"epochs {self.start_epoch}..{self.opts.epochs}, run folder {self.dirs.models}")
        for epoch in range(self.start_epoch, self.opts.epochs + 1):
            epoch_loss, loss_parts = self._train_epoch(epoch)
            lr = self.optimizer.param_groups[0]["lr"]
            if self.scheduler is not None:
                self.scheduler.step()
            logs = {"epoch": epoch, "loss": epoch_loss, **{f"loss_{k}": v for k, v in loss_parts.items()}}
            entry = {"epoch": epoch, "loss": epoch_loss, "loss_parts": loss_parts, "lr": lr}
            improved = False
            if epoch % self.opts.eval_every == 0 or epoch == self.opts.epochs:
                result = self._evaluate("val", self.data, epoch) if self.place.is_main else None
                flat, metrics = broadcast((result.flat("val"), result.metrics) if result else None, self.place)
                logs.update(flat)
                entry["val"] = metrics
                improved = self.monitor.update(logs)
            self.history.append(entry)
            if self.place.is_main:
                write_history(self.dirs.models / HISTORY_FILE, self.history)
            for key, value in logs.items():
                self.log.debug(f"    {key:15s}: {value}")
            self.log.info(epoch_line(epoch, self.opts.epochs, epoch_loss, lr, logs,
                                     improved and bool(self.monitor.key)))
            if self.writer:
                self.writer.add_scalar("train/epoch_loss", epoch_loss, epoch)
                for name, value in loss_parts.items():
                    self.writer.add_scalar(f"train/epoch_loss_{name}", value, epoch)
                self.writer.add_scalar("train/lr", lr, epoch)
            self._save(epoch, improved)
            if self.opts.early_stop and self.monitor.stale >= self.opts.early_stop:
                self.log.info(f"Early stopping: {self.monitor.key} has not improved "
                              f"for {self.monitor.stale} evaluations")
                break
        self._drop_training_state()
        return self.test_best() if self.place.is_main else None

    def _drop_training_state(self) -> None:
        """Free the optimiser's state (twice the weights, three times for Ranger) before the
        test evaluation, so it runs in about the memory test.py takes; it is in the last epoch
        checkpoint by now, and every step has freed its gradients already."""
        self.optimizer.state.clear()

    def test_best(self) -> EvalResult:
        """Load the best model (``trained_model.pth``) and evaluate it on the test split;
        writes metrics.json into the run's models folder and its pages into the results site.

        The test data comes from the config with its ``eval_settings`` merged in.
        """
        best_path = self.best_path
        state = load_any_checkpoint(best_path, mmap=True)  # mapped: read once, into the model's weights
        self.model.load_state_dict(state.pop("state_dict"))
        reason = unscored_reason(self.model, best_path)
        if reason is not None:
            write_unscored_json(self.dirs.models / "metrics.json", reason, epoch=state["epoch"],
                                checkpoint=str(best_path), params=count_trainable(self.model))
            publish_run_safely(self.dirs.models, self.dirs.web)
            raise NonFiniteError(reason)
        result = self._evaluate("test", self.test_data(), state["epoch"])
        if not result.metrics:  # the challenge's test phase: predictions only
            self.log.info(f"Best model:    {best_path}\nNo metrics for {result.split} (no ground truth is "
                          f"shown for it); log: {self.dirs.log / 'info.log'}")
            if self.writer:
                self.writer.close()
            return result
        metrics_path = write_metrics_json(self.dirs.models / "metrics.json", result, epoch=state["epoch"],
                                          checkpoint=str(best_path), params=count_trainable(self.model),
                                          precision=self.opts.precision)
        self.log.info(f"Test metrics of the best model (epoch {state['epoch']}):\n{format_table(result)}")
        site = self.dirs.web.parent.parent
        self.log.info(f"Best model:    {best_path}\nTest metrics:  {metrics_path}\n"
                      f"Run page:      {publish_run_safely(self.dirs.models, self.dirs.web)}\n"
                      f"Site:          {site / 'index.html'}  (or python3 -m http.server --directory {site})\n"
                      f"Log:           {self.dirs.log / 'info.log'}")
        if self.writer:
            self.writer.close()
        return result
