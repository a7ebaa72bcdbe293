"""Live Visdom plots of a run, sent from Ignite event handlers, that can never stop training.

We talk to the visdom client directly rather than through ignite's VisdomLogger because that
logger puts train and validation in separate windows, has no network timeout (a server that
accepts but never answers hangs the constructor), and deletes every window on close().
Here each request has a timeout; the first failure logs one warning and turns plotting off.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from ignite.engine import Engine

from ignite_lab.core.compat import timeout_visdom
from ignite_lab.core.files import atomic_path

log = logging.getLogger(__name__)
logging.getLogger("visdom").setLevel(logging.ERROR)  # its client logs "new session" and socket notices at every start


class Dashboard:
    """One run's plots in one Visdom env. Every method is a no-op once the server is gone."""

    def __init__(self, server: str, port: int, env: str) -> None:
        self.env = env
        self.url = f"{server.rstrip('/')}:{port}"
        self.vis: Any = None
        self._windows: set[str] = set()
        try:  # the client's first request (creating the env) goes through the timeout hook: it is the probe
            self.vis = timeout_visdom()(
                server=server, port=port, env=env, raise_exceptions=True, use_incoming_socket=False
            )
        except Exception as exc:  # any failure to reach it means: train without plots
            self._give_up(f"Visdom at {self.url} does not answer ({_reason(exc)})")
        else:
            log.info("live plots: %s/env/%s", self.url, env)

    @property
    def active(self) -> bool:
        return self.vis is not None

    def _give_up(self, why: str) -> None:
        self.vis = None
        log.warning("%s; training continues without live plots (metrics are still written to the run directory)", why)

    def _send(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.vis is None:
            return
        try:
            getattr(self.vis, method)(*args, **kwargs)
        except Exception as exc:
            self._give_up(f"Visdom at {self.url} stopped answering ({_reason(exc)})")

    def line(self, win: str, trace: str, x: list[float], y: list[float], title: str, xlabel: str) -> None:
        """Append points to trace ``trace`` of window ``win`` (created on first use)."""
        if not x:
            return
        exists = win in self._windows
        opts = {"title": title, "xlabel": xlabel, "showlegend": True}
        self._send(
            "line",
            env=self.env,
            X=np.asarray(x),
            Y=np.asarray(y),
            win=win,
            name=trace,
            update="append" if exists else None,
            opts=opts,
        )
        self._windows.add(win)

    def image(self, win: str, image: np.ndarray, title: str) -> None:
        """An RGB image (H, W, 3) uint8 or CHW float in [0, 1]."""
        array = np.asarray(image)
        if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
            array = array[..., :3].transpose(2, 0, 1)
        self._send("image", env=self.env, img=array, win=win, opts={"title": title, "caption": title})

    def text(self, win: str, text: str, title: str) -> None:
        self._send("text", env=self.env, text=f"<pre>{_escape(text)}</pre>", win=win, opts={"title": title})

    def save(self) -> None:
        """Persist the env to the server's env_path, so the plots survive a server restart."""
        self._send("save", [self.env])


class VisdomPlots:
    """The standard windows: loss by iteration (raw and smoothed), each metric by epoch (train and val),
    learning rate and throughput. Iteration points are sent in batches, at most every ``every_s`` seconds."""

    def __init__(self, dashboard: Dashboard, every_s: float = 1.0, smoothing: float = 0.98) -> None:
        self.dash = dashboard
        self.every_s = every_s
        self.smoothing = smoothing
        self._smoothed: float | None = None
        self._pending: list[tuple[int, float, float]] = []
        self._last_sent = 0.0

    def training_loss(self, trainer: Engine) -> None:
        """Ignite handler for the trainer's ITERATION_COMPLETED."""
        if not self.dash.active:
            return
        iteration, loss = trainer.state.iteration, trainer.state.output["loss"]
        if np.isfinite(loss):
            s = self._smoothed
            self._smoothed = loss if s is None else self.smoothing * s + (1 - self.smoothing) * loss
        self._pending.append((iteration, loss, self._smoothed if self._smoothed is not None else loss))
        if time.monotonic() - self._last_sent >= self.every_s:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        its, raw, smooth = zip(*self._pending, strict=True)
        self._pending.clear()
        self._last_sent = time.monotonic()
        self.dash.line("loss_by_iteration", "raw", list(its), list(raw), "training loss", "iteration")
        self.dash.line("loss_by_iteration", "smoothed", list(its), list(smooth), "training loss", "iteration")

    def epoch(self, epoch: int, train: dict[str, Any], val: dict[str, Any], lr: float, samples_per_s: float) -> None:
        self.flush()
        for split, metrics in (("train", train), ("val", val)):
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and np.isfinite(value) and name != "lr":
                    self.dash.line(f"metric_{name}", split, [epoch], [float(value)], name, "epoch")
        self.dash.line("lr", "lr", [epoch], [lr], "learning rate", "epoch")
        self.dash.line("throughput", "train", [epoch], [samples_per_s], "samples per second", "epoch")
        self.dash.save()

    def image(self, name: str, image: np.ndarray, epoch: int | None, title: str) -> None:
        self.dash.image(f"media_{name}", image, title)

    def text(self, name: str, text: str, epoch: int | None, title: str) -> None:
        self.dash.text(f"media_{name}", text, title)

    def finish(self, config: dict[str, Any], test: dict[str, Any] | None) -> None:
        self.flush()
        self.dash.save()


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class LiveSinks:
    """Where a run is shown while it trains (Visdom, TensorBoard): each call goes to every sink."""

    def __init__(self, sinks: list[Any]) -> None:
        self.sinks = sinks

    def training_loss(self, trainer: Engine) -> None:
        for sink in self.sinks:
            sink.training_loss(trainer)

    def epoch(self, epoch: int, train: dict[str, Any], val: dict[str, Any], lr: float, samples_per_s: float) -> None:
        for sink in self.sinks:
            sink.epoch(epoch, train, val, lr, samples_per_s)

    def image(self, name: str, image: np.ndarray, epoch: int | None, title: str) -> None:
        for sink in self.sinks:
            sink.image(name, image, epoch, title)

    def text(self, name: str, text: str, epoch: int | None, title: str) -> None:
        for sink in self.sinks:
            sink.text(name, text, epoch, title)

    def finish(self, config: dict[str, Any], test: dict[str, Any] | None) -> None:
        for sink in self.sinks:
            sink.finish(config, test)


class Publisher:
    """The one call recipes use for pictures and text: saved under RUN_DIR/media/ and sent to the live sinks.

    Without a ``media_dir`` (processes other than rank 0) it does nothing.
    """

    def __init__(self, media_dir, sinks: LiveSinks | None) -> None:
        self.media_dir = media_dir
        self.sinks = sinks

    def image(self, name: str, image: np.ndarray, epoch: int | None = None, title: str | None = None) -> None:
        """An RGB (H, W, 3) uint8 image, e.g. a prediction grid or an architecture drawing."""
        import matplotlib.image

        if self.media_dir is None:
            return
        self.media_dir.mkdir(exist_ok=True)
        suffix = f"_epoch{epoch}" if epoch is not None else ""
        with atomic_path(self.media_dir / f"{name}{suffix}.png") as tmp:
            matplotlib.image.imsave(tmp, np.asarray(image), format="png")
        if self.sinks is not None:
            self.sinks.image(name, image, epoch, title or name)

    def text(self, name: str, text: str, epoch: int | None = None, title: str | None = None) -> None:
        """A text sample, e.g. generated characters; appended to RUN_DIR/media/NAME.txt."""
        if self.media_dir is None:
            return
        self.media_dir.mkdir(exist_ok=True)
        with open(self.media_dir / f"{name}.txt", "a") as f:
            f.write(f"--- epoch {epoch}\n{text}\n" if epoch is not None else f"{text}\n")
        if self.sinks is not None:
            self.sinks.text(name, text, epoch, title or (f"{name} (epoch {epoch})" if epoch else name))
