"""Experiment trackers (TensorBoard, Weights & Biases) fed the records of `metrics.jsonl`, behind one guard."""

from __future__ import annotations

import logging
import os
import time
from typing import Collection, Iterable, Mapping, Optional

import yaml

log = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"  # event files go to <run_dir>/tensorboard
_NOT_VALUES = ("split", "step", "timestamp")  # record keys that place a record, not values of it


def record_scalars(record: Mapping, system_keys: Collection[str] = ()) -> dict[str, float]:
    """The tracker tags and values of one metrics.jsonl record: `<split>/<key>` for each number
    ("train/loss", "eval/exact_accuracy", "curriculum/seq_len"), `system/<key>` for the resource-monitor
    readings in `system_keys` ("system/ram_percent"). Text, null (NaN) and true/false values are left out."""
    split = record.get("split", "train")
    return {f"{'system' if key in system_keys else split}/{key}": float(value) for key, value in record.items()
            if key not in _NOT_VALUES and isinstance(value, (int, float)) and not isinstance(value, bool)}


class Tracker:
    """One experiment tracker. It gets host numbers only, once per record (every `training.log_every`
    steps, each evaluation, each curriculum change), never a device array, so it adds no device sync."""

    name = "tracker"  # the name warnings use
    extra = ""  # the trm_jax extra that installs it
    fix = ""  # how to fix any other failure, for the warning

    def log(self, step: int, scalars: Mapping[str, float], wall_time: float) -> None:
        raise NotImplementedError

    def restart(self, step: int) -> None:
        """The run continues after `step` (a resumed run; -1 = a fresh start): values logged earlier at
        later steps are stale."""

    def close(self) -> None:
        pass


class TensorBoardTracker(Tracker):
    """Scalars (`simple_value`, float32) and the run's config as text in event files under `log_dir`,
    written by TensorBoard's own asynchronous event writer; neither TensorFlow nor torch is imported."""

    name = "TensorBoard"
    extra = "tensorboard"
    fix = "keep <run_dir>/tensorboard writable (free disk space), or set logging.tensorboard: false"

    def __init__(self, log_dir: str, config_text: Optional[str] = None, *, flush_secs: float = 15.0):
        # tensorboard is an optional extra; these modules are its pure-Python writer and compiled protos
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
        self._writer = EventFileWriter(log_dir, flush_secs=flush_secs)
        self._config_text = config_text  # written once, at the run's first step (see restart)

    def _add(self, step: int, summary, wall_time: Optional[float] = None) -> None:
        self._writer.add_event(self._event_pb2.Event(step=step, wall_time=wall_time or time.time(), summary=summary))

    def _write_config(self, step: int) -> None:
        if self._config_text is not None:
            # text summaries belong to TensorBoard's text plugin (Markdown: a code block keeps the YAML)
            from tensorboard.plugins.text.summary_v2 import text_pb
            self._add(step, text_pb("config", f"```yaml\n{self._config_text}```"))
            self._config_text = None

    def log(self, step, scalars, wall_time):
        self._write_config(0)
        values = [self._summary_pb2.Summary.Value(tag=tag, simple_value=value) for tag, value in scalars.items()]
        self._add(step, self._summary_pb2.Summary(value=values), wall_time)

    def restart(self, step):
        # a session START makes TensorBoard's readers drop what earlier files hold at steps >= its step:
        # the tail of an interrupted run that the resumed one writes again
        session = self._event_pb2.SessionLog
        self._writer.add_event(self._event_pb2.Event(step=step + 1, wall_time=time.time(),
                                                     session_log=session(status=session.START)))
        self._write_config(max(step, 0))

    def close(self):
        self._write_config(0)
        self._writer.close()


class WandbTracker(Tracker):
    """A Weights & Biases run: the config as the run config, every record's scalars at its step. Its
    files go to <run_dir>/wandb (or $WANDB_DIR); offline runs upload later with `wandb sync`."""

    name = "Weights & Biases"
    extra = "wandb"
    fix = ("run `wandb login` (or set WANDB_API_KEY) and check the network and logging.wandb.project/entity; or set "
           "logging.wandb.mode: offline and upload later with `wandb sync`")

    def __init__(self, project: str, *, entity: Optional[str] = None, name: Optional[str] = None,
                 mode: Optional[str] = None, config: Optional[dict] = None, directory: Optional[str] = None,
                 init_timeout_s: float = 60.0):
        import wandb  # optional extra, and a heavy import

        # console capture stays off: the run directory's train.log has the console, and redirecting
        # stdout would interleave with the progress bar
        settings = wandb.Settings(init_timeout=init_timeout_s, console="off")
        kwargs = dict(project=project, entity=entity, name=name, mode=mode, config=config, settings=settings,
                      reinit="create_new")  # one W&B run per Trainer, even with another still open
        if directory is not None and "WANDB_DIR" not in os.environ:
            os.makedirs(directory, exist_ok=True)
            kwargs["dir"] = directory
        self.run = wandb.init(**kwargs)

    def log(self, step, scalars, wall_time):
        self.run.log(dict(scalars), step=step)

    def close(self):
        self.run.finish()


class Trackers:
    """The run's trackers behind one guard: a tracker that raises warns once (naming itself and the fix)
    and is dropped for the rest of the run, so no tracker can stop training."""

    def __init__(self, trackers: Iterable[Tracker] = ()):
        self.active = list(trackers)

    def log(self, record: Mapping, system_keys: Collection[str] = ()) -> None:
        if self.active:
            scalars = record_scalars(record, system_keys)
            if scalars:
                self._each("log", int(record["step"]), scalars, float(record["timestamp"]))

    def restart(self, step: int) -> None:
        self._each("restart", step)

    def close(self) -> None:
        self._each("close")
        self.active = []

    def _each(self, method: str, *args) -> None:
        for tracker in list(self.active):
            try:
                getattr(tracker, method)(*args)
            except Exception as e:  # whatever a tracker raises, training goes on without it
                self.active.remove(tracker)
                _warn_off(tracker, e)
                if method != "close":
                    try:
                        tracker.close()
                    except Exception:
                        pass


def _warn_off(tracker: Tracker | type[Tracker], error: Exception) -> None:
    if isinstance(error, ImportError):
        what, fix = f"not installed ({error})", f"pip install 'trm_jax[{tracker.extra}]'"
    else:
        what, fix = f"{type(error).__name__}: {str(error).rstrip('.')}", tracker.fix
    log.warning("%s tracker off for the rest of the run (training goes on without it): %s. To fix: %s",
                tracker.name, what, fix)


def make_trackers(config, run_dir: str) -> list[Tracker]:
    """The trackers that `config.logging` (a TRMConfig's) turns on, logging the config once; call it on
    the main process only. A tracker that cannot start (not installed, no network, bad key) warns once
    and is left out."""
    cfg, out = config.logging, []
    plain = config.to_dict()
    starts = []
    if cfg.tensorboard:
        starts.append((TensorBoardTracker, lambda: TensorBoardTracker(
            os.path.join(run_dir, TENSORBOARD_DIR), yaml.safe_dump(plain, sort_keys=False))))
    wb = cfg.wandb
    if wb is not None and wb.project is not None:
        starts.append((WandbTracker, lambda: WandbTracker(
            wb.project, entity=wb.entity, name=wb.name or os.path.basename(os.path.normpath(run_dir)), mode=wb.mode,
            config=plain, directory=run_dir, init_timeout_s=wb.init_timeout_s)))
    for kind, start in starts:
        try:
            out.append(start())
        except Exception as e:  # an ImportError (not installed) included: the run goes on without it
            _warn_off(kind, e)
    return out
