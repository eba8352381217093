r"""The one epoch loop, under every model and backend.

:class:`Engine` owns, for every path (NumPy, CuPy, Dask, masked):

* the epoch loop, ``schedule.init`` and the ticks (each epoch, or every ``schedule_every``
  steps), and the only :class:`~nmf_sched.schedules.StepInfo` built outside ``schedules/``,
  with the extras a schedule declares in ``needs`` (``"ceilings"``, ``"grad_dot"``,
  ``"probe"``);
* the divergence guard: a snapshot per epoch, restore, cap on, damp, retries;
* the stop rules (``max_time``, the callback, ``tol``), the trace, the progress bar;
* checkpoint and resume (:mod:`nmf_sched.engine.checkpoint`).

A *model* (:mod:`~nmf_sched.engine.rows`, :mod:`~nmf_sched.engine.entries`,
:mod:`~nmf_sched.engine.shards`) plugs in with a narrow interface: ``epoch_units(rng)``,
``step(unit, lr_W, lr_H, acc)``, ``end_epoch(acc, complete)``, ``balance()``,
``snapshot()``/``restore()``, ``probe(unit)``, ``grad_dot()``, the factors, and the
checkpoint arrays. The model steps; the engine decides when, at which learning rate, and
what happens when a step fails.

The clock of a schedule: ``update`` once with ``tick = 0`` (the initial observation, at the
init), then once per tick. The loss it sees is the epoch's exact loss (``schedule_loss=
"full"``) or the mean scaled step loss (``"batch"``, and at every mid-epoch tick).
"""
from __future__ import annotations

import logging
import math
import time

import numpy as np

from ..result import FitResult, Trace
from ..schedules.base import StepInfo
from .control import Diverged, ShardLost, StepControl, mean_lr, split_lr

log = logging.getLogger("nmf_sched")

__all__ = ["Engine", "epoch_stop", "MAX_RECOVERIES"]

#: Lost-worker recoveries allowed per fit (Dask) before the engine gives up.
MAX_RECOVERIES = 3


def epoch_stop(cfg, best, t0, timed_out, record, W, H):
    """The end-of-epoch stop rules, in order: the time budget, the user's callback
    (``record, W, H``), the relative tolerance over the last ``n_iter_no_change`` epochs of
    the running best watched loss. Returns the stop reason or None."""
    if timed_out or (cfg.max_time is not None and time.perf_counter() - t0 > cfg.max_time):
        return "max_time"
    if cfg.callback is not None and cfg.callback(record, W, H):
        return "callback"
    w = cfg.n_iter_no_change
    if cfg.tol > 0 and len(best) > w and (best[-1 - w] - best[-1]) <= cfg.tol * abs(best[-1]):
        return "tol"
    return None


def _progress(enabled, total, initial=0):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("progress=True needs tqdm: pip install 'nmf-sched[progress]'") from exc
    return tqdm(total=total, initial=initial, unit="epoch", desc="nmf-sched")


class Engine:
    """Run ``model`` under ``schedule`` with the settings ``cfg`` (an EngineConfig).

    Parameters
    ----------
    model : a model object (see the module docstring)
    schedule : Schedule
    cfg : EngineConfig (RowConfig / MaskedConfig)
    rng : numpy.random.Generator
        The run's generator: batch orders and gradient noise.
    fingerprint : dict, optional
        What identifies the data and the settings (checkpoint files carry it).
    settings : dict, optional
        Copied to ``FitResult.settings``.
    """

    def __init__(self, model, schedule, cfg, rng, *, fingerprint=None, settings=None):
        self.model, self.schedule, self.cfg, self.rng = model, schedule, cfg, rng
        self.needs = tuple(getattr(schedule, "needs", ()) or ())
        self.ctl = StepControl(cfg.kappa, cfg.clip_lr)
        self.fingerprint = fingerprint or {}
        self.settings = dict(settings or {})
        model.bind(self.ctl, self.needs)

    # ------------------------------------------------------------------ StepInfo
    def _info(self, epoch, loss, cW, cH, next_unit):
        extras = {}
        if "ceilings" in self.needs:
            extras["ceilings"] = {"W": cW, "H": cH}
        if "grad_dot" in self.needs:
            extras["grad_dot"] = self.model.grad_dot()
        if "probe" in self.needs:
            extras["probe"] = self.model.probe(next_unit)
        ceiling = min(cW, cH)
        return StepInfo(step=self.step_count, epoch=epoch, loss=loss,
                        ceiling=ceiling if math.isfinite(ceiling) else None,
                        extras=extras, tick=self.tick)

    def _lr(self, state):
        lr_W, lr_H = split_lr(self.schedule.lr(state), self.model.xp)
        if not self.model.per_entry_lr:
            for block, v in (("W", lr_W), ("H", lr_H)):
                if not isinstance(v, float):
                    raise ValueError(f"{self.model.describe()} takes one learning rate per block; "
                                     f"the schedule returned per-entry learning rates for {block}")
        return lr_W, lr_H

    # ------------------------------------------------------------------ state for checkpoints
    def _engine_state(self, epoch, state, rng_state, loss):
        return {"epoch": epoch, "schedule_state": state, "rng_state": rng_state,
                "step_count": self.step_count, "tick": self.tick, "control": self.ctl.state(),
                "retries": self.retries, "best": list(self.best), "loss": loss,
                "loss_ref": self.model.loss_ref, "seconds": time.perf_counter() - self.t0,
                "trace": list(self.trace)}

    def _write_checkpoint(self, path, epoch, state, rng_state, loss):
        from .checkpoint import write_checkpoint

        W, H = self.model.host_factors()
        write_checkpoint(path, W=W, H=H, engine=self._engine_state(epoch, state, rng_state, loss),
                         arrays=self.model.extra_arrays(), fingerprint=self.fingerprint)

    def _load(self, ck):
        """Restore everything a checkpoint holds (the model's factors included)."""
        e = ck["engine"]
        self.model.set_factors(ck["W"], ck["H"])
        self.model.load_extra_arrays(ck["arrays"])
        self.model.loss_ref = float(e["loss_ref"])
        self.step_count, self.tick = int(e["step_count"]), int(e["tick"])
        self.ctl.load(e["control"])
        self.retries = int(e["retries"])
        self.best = [float(x) for x in e["best"]]
        self.trace = Trace(e["trace"])
        self.rng.bit_generator.state = e["rng_state"]
        self.t0 = time.perf_counter() - float(e["seconds"])
        return int(e["epoch"]), e["schedule_state"], float(e["loss"])

    # ------------------------------------------------------------------ the loop
    def run(self, resume=None) -> FitResult:
        """Run to a stop rule. ``resume``: a loaded checkpoint (dict) to continue from."""
        cfg, sched, model, rng = self.cfg, self.schedule, self.model, self.rng
        self.t0 = time.perf_counter()
        self.step_count = self.tick = self.retries = 0
        recoveries = 0
        if resume is not None:
            epoch, state, loss = self._load(resume)
            rng_state = rng.bit_generator.state
            units = model.epoch_units(rng)
        else:
            epoch = 0
            rng_state = rng.bit_generator.state
            units = model.epoch_units(rng)
            r0 = model.start(units[0])
            loss = r0["loss"]
            state = sched.update(sched.init(), self._info(0, r0["watched"], r0["cW"], r0["cH"],
                                                          units[0]))
            self.trace = Trace()
            self.trace.append(epoch=0, step=0, lr_W=np.nan, lr_H=np.nan, step_W=0.0, step_H=0.0,
                              ceiling_W=r0["cW"], ceiling_H=r0["cH"], loss=loss,
                              rel_error=r0["rel_error"], seconds=time.perf_counter() - self.t0,
                              retries=0, **r0.get("fields", {}))
            self.best = [r0["watched"]]
            if cfg.checkpoint is not None:
                self._write_checkpoint(cfg.checkpoint, 0, state, rng_state, loss)
        recovery = (self._recovery_point(epoch, state, loss, rng_state)
                    if model_recoverable(model) else None)
        stop_reason = "max_epochs"
        bar = _progress(cfg.progress, cfg.epochs, initial=epoch)
        every = getattr(model, "tick_every", cfg.schedule_every)
        while epoch < cfg.epochs:
            snap = model.snapshot()
            snap_engine = (state, self.step_count, self.tick)
            acc = model.new_acc()
            lr_W, lr_H = self._lr(state)
            lr_log = (mean_lr(lr_W), mean_lr(lr_H))
            timed_out = False
            try:
                for j, unit in enumerate(units):
                    model.step(unit, lr_W, lr_H, acc)
                    self.step_count += model.unit_steps(unit)
                    if every and (j + 1) % every == 0 and j + 1 < len(units):
                        self.tick += 1
                        s = model.summary(acc)
                        state = sched.update(state, self._info(epoch, s["fB"], s["cW"], s["cH"],
                                                               units[j + 1]))
                        lr_W, lr_H = self._lr(state)
                    if cfg.max_time is not None and time.perf_counter() - self.t0 > cfg.max_time \
                            and j + 1 < len(units):
                        timed_out = True
                        break
                ev = model.end_epoch(acc, not timed_out)
            except (Diverged, FloatingPointError, np.linalg.LinAlgError) as exc:
                model.restore(snap)
                state, self.step_count, self.tick = snap_engine
                self.retries += 1
                log.info("epoch %d diverged (%s); restoring and shrinking the step", epoch + 1, exc)
                if not cfg.guard or self.retries > cfg.max_retries:
                    stop_reason = "diverged"
                    loss = model.current_loss()["loss"]
                    break
                # the first divergence of an unclipped run turns the ceiling on;
                # every divergence shrinks the step
                self.ctl.cap = 1.0
                self.ctl.damp *= cfg.guard_shrink
                units = model.epoch_units(rng)
                continue
            except ShardLost as exc:
                recoveries += 1
                if recovery is None or recoveries > MAX_RECOVERIES:
                    raise model.lost_error(exc, self._result_at(recovery)) from exc
                log.warning("lost a worker (%s); recovering from epoch %d", exc, recovery["engine"]["epoch"])
                model.recover()
                epoch, state, loss = self._load(recovery)
                units = model.epoch_units(rng)
                continue
            epoch += 1
            loss = ev["loss"]
            s = ev["summary"]
            if getattr(cfg, "balance", False):
                model.balance()
            self.trace.append(epoch=epoch, step=self.step_count, lr_W=lr_log[0], lr_H=lr_log[1],
                              step_W=s["step_W"], step_H=s["step_H"], ceiling_W=s["cW"],
                              ceiling_H=s["cH"], loss=loss, rel_error=ev["rel_error"],
                              seconds=time.perf_counter() - self.t0, retries=self.retries,
                              **ev["fields"])
            self.best.append(min(self.best[-1], ev["watched"]))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(rel_error=f"{ev['rel_error']:.4g}")
            log.debug("epoch %d loss %.6g", epoch, loss)
            reason = epoch_stop(cfg, self.best, self.t0, timed_out, self.trace[-1],
                                *(model.factors() if cfg.callback is not None else (None, None)))
            if reason is not None:
                stop_reason = reason
                break
            sched_loss = ev["watched"] if getattr(cfg, "schedule_loss", "full") == "full" else s["fB"]
            self.tick += 1
            rng_state = rng.bit_generator.state
            units = model.epoch_units(rng)
            state = sched.update(state, self._info(epoch, sched_loss, s["cW"], s["cH"], units[0]))
            if cfg.checkpoint is not None and epoch % cfg.checkpoint_every == 0:
                self._write_checkpoint(cfg.checkpoint, epoch, state, rng_state, loss)
            if recovery is not None and epoch % model.recover_every == 0:
                recovery = self._recovery_point(epoch, state, loss, rng_state)
        if bar is not None:
            bar.close()
        return self._result(state, stop_reason, loss, epoch, recoveries)

    # ------------------------------------------------------------------ results
    def _recovery_point(self, epoch, state, loss, rng_state):
        """An in-memory checkpoint (Dask: the driver's copy of the factors), taken where a
        checkpoint file would be: after the tick, with the generator's state before the draw
        of the next epoch's units."""
        W, H = self.model.host_factors()
        return {"W": W, "H": H, "arrays": self.model.extra_arrays(),
                "engine": self._engine_state(epoch, state, rng_state, loss)}

    def _result_at(self, point):
        if point is None:
            return None
        e = point["engine"]
        tr = Trace(e["trace"])
        loss = float(e["loss"])
        return FitResult(W=point["W"], H=point["H"], trace=tr, stop_reason="diverged",
                         schedule=self.schedule, schedule_state=e["schedule_state"], loss=loss,
                         rel_error=tr[-1]["rel_error"], n_epochs=int(e["epoch"]),
                         n_steps=int(e["step_count"]), seconds=float(e["seconds"]),
                         settings=dict(self.settings))

    def _result(self, state, stop_reason, loss, epoch, recoveries) -> FitResult:
        W, H = self.model.factors() if self.model.kind != "shards" else self.model.host_factors()
        rel = self.model.rel_error(loss) if self.model.kind != "entries" else self.trace[-1]["rel_error"]
        settings = dict(self.settings)
        if recoveries:
            settings["recoveries"] = recoveries
        return FitResult(W=W, H=H, trace=self.trace, stop_reason=stop_reason,
                         schedule=self.schedule, schedule_state=state, loss=float(loss),
                         rel_error=rel, n_epochs=epoch, n_steps=self.step_count,
                         seconds=time.perf_counter() - self.t0, settings=settings)


def model_recoverable(model) -> bool:
    return bool(getattr(model, "recoverable", False))
